/*
 * SIR Giving donate button.
 *
 *   <script src="https://API_HOST/widget.js" data-partner-key="pk_test_…"
 *           data-nonprofit="american-red-cross" data-amount="2500"
 *           data-currency="USD" data-provider="stripe" async></script>
 *
 * Renders a small donation form after the script tag (or into the element
 * named by data-target), creates a donation link with the publishable key,
 * sends the donor to checkout, and when the donor comes back (the page URL
 * carries sirDonationId) shows the donation's status and tokens.
 *
 * It loads nothing else, evaluates no strings and writes no inline styles
 * or markup, so a page with a strict Content-Security-Policy only needs
 * this origin in script-src and connect-src.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var api = new URL(script.src).origin;
  var key = script.getAttribute("data-partner-key") || "";
  var slug = script.getAttribute("data-nonprofit") || "";
  var amount = script.getAttribute("data-amount") || "2500";
  var currency = script.getAttribute("data-currency") || "USD";
  var provider = script.getAttribute("data-provider") || "stripe";
  var frequency = script.getAttribute("data-frequency") || "once";

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }

  function call(method, path, body) {
    var init = { method: method, headers: { "X-Partner-Key": key } };
    if (body) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(api + path, init).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw new Error(j.message || r.statusText);
        return j;
      });
    });
  }

  // Cents from "25" or "25.50", without floating point.
  function toCents(s) {
    var m = /^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$/.exec(s);
    if (!m) return null;
    return parseInt(m[1], 10) * 100 + parseInt(((m[2] || "") + "00").slice(0, 2), 10);
  }
  function fromCents(c) {
    var s = String(c);
    while (s.length < 3) s = "0" + s;
    return s.slice(0, -2) + "." + s.slice(-2);
  }

  var root = el("div", { "class": "sir-donate", "data-sir-widget": "" });
  var target = script.getAttribute("data-target");
  var host = target && document.querySelector(target);
  if (host) host.appendChild(root); else script.parentNode.insertBefore(root, script.nextSibling);

  var status = el("p", { "data-sir-message": "", "role": "status" });
  var params = new URLSearchParams(window.location.search);
  var returning = params.get("sirDonationId");

  function showStatus(id, tries) {
    call("GET", "/v1/partner/donations/status/" + encodeURIComponent(id)).then(function (d) {
      status.textContent = "";
      status.appendChild(document.createTextNode("Donation "));
      status.appendChild(el("strong", { "data-sir-status": d.status }, d.status));
      status.appendChild(document.createTextNode(" · " + fromCents(d.amount) + " " + d.currency + " to " + d.nonprofit.name + " · "));
      status.appendChild(el("strong", { "data-sir-tokens": String(d.tokensRewarded) }, String(d.tokensRewarded)));
      status.appendChild(document.createTextNode(" SIR tokens"));
      if (d.status === "PENDING" && tries > 0) {
        setTimeout(function () { showStatus(id, tries - 1); }, 1000);
      }
    }).catch(function (e) { status.textContent = "Could not check the donation: " + e.message; });
  }

  if (returning) {
    status.textContent = "Checking your donation…";
    root.appendChild(status);
    showStatus(returning, 60);
    return;
  }

  var form = el("form", { "data-sir-form": "" });
  var amountInput = el("input", { name: "amount", "aria-label": "Amount (" + currency + ")", value: fromCents(parseInt(amount, 10) || 2500), inputmode: "decimal" });
  var email = el("input", { name: "email", type: "email", required: "", placeholder: "Email", "aria-label": "Email" });
  var first = el("input", { name: "firstName", placeholder: "First name", "aria-label": "First name" });
  var last = el("input", { name: "lastName", placeholder: "Last name", "aria-label": "Last name" });
  var button = el("button", { type: "submit", "data-sir-donate": "" }, "Donate");
  [amountInput, email, first, last, button].forEach(function (e) { form.appendChild(e); });
  root.appendChild(form);
  root.appendChild(status);

  var tipPercent = null;
  call("GET", "/v1/partner/config").then(function (c) {
    if (c.tipConfig && c.tipConfig.enabled && c.tipConfig.defaultPercent > 0) tipPercent = c.tipConfig.defaultPercent;
    if (c.enabledFeatures && c.enabledFeatures.indexOf("DONATIONS") < 0) {
      button.disabled = true;
      status.textContent = "Donations are not enabled.";
    }
  }).catch(function () {});

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var cents = toCents(amountInput.value);
    if (cents === null) { status.textContent = "Enter an amount such as 25 or 25.50."; return; }
    button.disabled = true;
    status.textContent = "Opening checkout…";
    var back = new URL(window.location.href);
    back.searchParams.delete("sirDonationId");
    back.searchParams.delete("sirCheckout");
    var body = {
      nonprofitSlug: slug, amount: cents, currency: currency, frequency: frequency, provider: provider,
      donorEmail: email.value, firstName: first.value, lastName: last.value, returnUrl: back.toString()
    };
    if (tipPercent !== null) body.tipPercent = tipPercent;
    call("POST", "/v1/partner/donations/create-link", body).then(function (link) {
      window.location.assign(link.donationLink);
    }).catch(function (e) {
      button.disabled = false;
      status.textContent = "Could not start the donation: " + e.message;
    });
  });
})();
