// Passkey buttons for the pages of lucia_fastapi. No inline script anywhere (a CSP of script-src 'self' holds):
// a button says what to do in data- attributes. Fetch the options (the server also sets the ceremony cookie),
// let the browser talk to the authenticator, post the answer back, then go to data-next.
async function passkeyCeremony(button) {
  const errorBox = document.getElementById("passkey-error");
  errorBox.hidden = true;
  button.disabled = true;
  try {
    const options = await call(button, button.dataset.options, {});
    const publicKey = button.dataset.passkey === "create"
      ? PublicKeyCredential.parseCreationOptionsFromJSON(options.options)
      : PublicKeyCredential.parseRequestOptionsFromJSON(options.options);
    const credential = button.dataset.passkey === "create"
      ? await navigator.credentials.create({publicKey})
      : await navigator.credentials.get({publicKey});
    const body = {credential: credential.toJSON()};
    if (button.dataset.nameInput) body.name = document.getElementById(button.dataset.nameInput).value;
    await call(button, button.dataset.finish, body);
    window.location.assign(button.dataset.next || "/");
  } catch (error) {
    errorBox.textContent = error.message || String(error);
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
}

async function call(button, url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "Accept": "application/json"},
    body: JSON.stringify(body),
  });
  let answer = {};
  try { answer = await response.json(); } catch (_) { /* an empty body */ }
  if (response.ok) return answer;
  const code = answer.detail && answer.detail.code;
  if (code === "AUTH_REAUTHENTICATION_REQUIRED" && button.dataset.reauthenticate) {
    window.location.assign(button.dataset.reauthenticate + "?next=" + encodeURIComponent(window.location.pathname));
  }
  throw new Error((answer.detail && answer.detail.message) || "Something went wrong (" + response.status + ").");
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-passkey]");
  if (button) {
    event.preventDefault();
    passkeyCeremony(button);
  }
});
