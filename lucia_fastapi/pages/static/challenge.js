// The proof-of-work challenge of lucia_fastapi's sign-in and sign-up forms (core/challenge.py). No inline script:
// a form with data-challenge="<url>" asks that URL, when it is sent, whether a solution is needed now; if so, the
// browser searches the number whose SHA-256 with the challenge's salt is the challenge (ALTCHA's v1), puts the
// solution in the form's hidden "altcha" field and sends the form. Without JavaScript the form is sent as it is:
// refused only while the server needs a solution (under a flood), with a message saying so.
async function solve(challenge) {
  const encoder = new TextEncoder();
  const algorithm = challenge.algorithm || "SHA-256";
  const most = challenge.maxNumber ?? challenge.maxnumber;
  for (let number = 0; number <= most; number++) {
    const digest = await crypto.subtle.digest(algorithm, encoder.encode(challenge.salt + number));
    const hex = Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
    if (hex === challenge.challenge) {
      return btoa(JSON.stringify({
        algorithm, challenge: challenge.challenge, number, salt: challenge.salt, signature: challenge.signature,
      }));
    }
  }
  return "";
}

document.querySelectorAll("form[data-challenge]").forEach((form) => {
  form.addEventListener("submit", async (event) => {
    const field = form.querySelector("input[name=altcha]");
    if (field.value || !window.crypto || !crypto.subtle) return;  // solved, or cannot be: send as it is
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const answer = await fetch(form.dataset.challenge, {headers: {accept: "application/json"}});
      const asked = answer.ok ? await answer.json() : {required: false};
      if (asked.required) field.value = await solve(asked.challenge);
    } finally {
      button.disabled = false;
      form.submit();
    }
  });
});
