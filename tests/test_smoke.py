from labshare.models import Institute


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_factories_write_rows(db, make_instrument):
    instrument = make_instrument()
    db.session.commit()
    assert db.session.get(Institute, instrument.institute_id) is not None
