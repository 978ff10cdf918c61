/* Small progressive enhancement of the booking pages; everything works without it.
   - Booking form: moving the start keeps the chosen duration.
   - Buttons with data-confirm ask before submitting. */
(function () {
  "use strict";

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function toLocalValue(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function parseLocal(value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
    if (!m) { return null; }
    return new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  }

  var form = document.querySelector("form.booking-form");
  if (form) {
    var start = form.querySelector("input[name=start]");
    var end = form.querySelector("input[name=end]");
    var minMinutes = parseInt(form.getAttribute("data-min-minutes"), 10) || 30;
    var duration = null;
    var s0 = parseLocal(start && start.value), e0 = parseLocal(end && end.value);
    if (s0 && e0 && e0 > s0) { duration = e0 - s0; }
    if (start && end) {
      start.addEventListener("change", function () {
        var s = parseLocal(start.value);
        if (!s) { return; }
        var d = duration || minMinutes * 60000;
        end.value = toLocalValue(new Date(s.getTime() + d));
      });
      end.addEventListener("change", function () {
        var s = parseLocal(start.value), e = parseLocal(end.value);
        if (s && e && e > s) { duration = e - s; }
      });
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-confirm]") : null;
    if (target && !window.confirm(target.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
})();
