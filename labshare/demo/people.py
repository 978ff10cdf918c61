"""Demo companies with their members, institute staff and the platform admin,
keyed on credit code and e-mail so a second run adds nothing."""

from __future__ import annotations

import random

from sqlalchemy import select

from labshare.accounts.credit_code import USCC_ALPHABET, make_credit_code, validate_credit_code
from labshare.demo import catalogue as cat
from labshare.demo.plan import Plan
from labshare.extensions import db
from labshare.models import Company, CompanySize, Institute, Role, User

COMPANY_COUNT = 50
#: Institutes with a second staff member.
SECOND_STAFF = {"NIM", "SIMT", "GDIM", "JSIM"}


def _person(rng: random.Random) -> tuple[str, str]:
    surname, surname_py = rng.choice(cat.SURNAMES)
    given, given_py = rng.choice(cat.GIVEN_NAMES)
    return surname + given, f"{given_py}.{surname_py}"


def _credit_code(rng: random.Random, division: str) -> str:
    # Codes issued since 2015 carry an organisation code beginning "MA".
    body = "MA" + "".join(rng.choice(USCC_ALPHABET) for _ in range(6))
    return validate_credit_code(make_credit_code(division, body))


def _user(
    plan: Plan,
    email: str,
    name: str,
    role: Role,
    *,
    company: Company | None = None,
    institute: Institute | None = None,
    locale: str = "zh_CN",
) -> User:
    return User(
        email=User.normalize_email(email),
        name=name,
        password_hash=plan.hash_password(),
        role=role,
        company=company,
        institute=institute,
        locale=locale,
    )


def add_companies_and_users(plan: Plan) -> None:
    companies = {c.credit_code: c for c in db.session.scalars(select(Company))}
    users = {u.email: u for u in db.session.scalars(select(User))}
    new_companies: list[Company] = []
    new_users: list[User] = []
    wanted: list[tuple[Company, list[tuple[str, str, str]]]] = []
    for i in range(COMPANY_COUNT):
        rng = plan.rng("company", i)
        division, province, city = cat.SME_CITIES[i % len(cat.SME_CITIES)]
        brand, brand_py = cat.BRANDS[i % len(cat.BRANDS)]
        industry, suffix = rng.choice(cat.INDUSTRIES)
        code = _credit_code(rng, division)
        size = rng.choice(
            [CompanySize.MICRO, CompanySize.SMALL, CompanySize.SMALL, CompanySize.MEDIUM]
        )
        company = companies.get(code)
        if company is None:
            company = Company(
                name=f"{city}{brand}{suffix}",
                credit_code=code,
                province=province,
                industry=industry,
                size=size,
            )
            companies[code] = company
            new_companies.append(company)
        members = []
        for m in range(1 if rng.random() < 0.6 else 2):
            name, local = _person(rng)
            email = f"{local}{m or ''}@{brand_py}{i + 1:02d}.{cat.DEMO_EMAIL_SUFFIX}"
            if i == 0 and m == 0:
                email = cat.SME_EMAIL
            members.append((email, name, "en" if rng.random() < 0.15 else "zh_CN"))
        wanted.append((company, members))
    plan.add("company", new_companies)

    for company, members in wanted:
        for m, (email, name, locale) in enumerate(members):
            user = users.get(email)
            if user is None:
                user = _user(plan, email, name, Role.SME, company=company, locale=locale)
                user.company_admin = m == 0  # each demo company has its administrator
                users[email] = user
                new_users.append(user)
        plan.companies.append(company)
    plan.add("user_account", new_users)
    db.session.flush()
    for company, members in wanted:
        plan.users_by_company[company.id] = [users[email] for email, _n, _l in members]


def add_staff_and_admin(plan: Plan) -> None:
    users = {u.email: u for u in db.session.scalars(select(User))}
    new_users: list[User] = []
    for code, inst in plan.institutes.items():
        rng = plan.rng("staff", code)
        accounts = [(cat.staff_email(code), _person(rng)[0])]
        if code in SECOND_STAFF:
            name, local = _person(rng)
            accounts.append((f"{local}@{code.lower()}.{cat.DEMO_EMAIL_SUFFIX}", name))
        staff = []
        for email, name in accounts:
            user = users.get(email)
            if user is None:
                user = _user(plan, email, name, Role.STAFF, institute=inst)
                users[email] = user
                new_users.append(user)
            staff.append(user)
        plan.staff_by_institute[inst.id] = staff
    if cat.ADMIN_EMAIL not in users:
        new_users.append(_user(plan, cat.ADMIN_EMAIL, "平台管理员", Role.ADMIN))
    plan.add("user_account", new_users)
    db.session.flush()
