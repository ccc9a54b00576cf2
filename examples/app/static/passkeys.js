// Passkey ceremonies (the CSP allows no inline script: buttons say what to do in data- attributes).
// Fetch the options (the server also sets the ceremony cookie), let the browser talk to the authenticator, post
// the answer back. PublicKeyCredential's JSON helpers do the base64url work.
async function passkeyCeremony(button) {
  const errorBox = document.getElementById(button.dataset.errorBox || "passkey-error");
  const extra = {};
  if (button.dataset.next !== undefined) extra.next = button.dataset.next;
  if (button.dataset.nameInput) extra.name = document.getElementById(button.dataset.nameInput).value;
  errorBox.hidden = true;
  errorBox.classList.remove("error");
  try {
    const optionsResponse = await fetch(button.dataset.options, {method: "POST", headers: {"Accept": "application/json"}});
    if (!optionsResponse.ok) throw await problem(optionsResponse);
    const options = await optionsResponse.json();
    const credential = button.dataset.kind === "create"
      ? await navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options)})
      : await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)});
    const finish = await fetch(button.dataset.finish, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify({credential: credential.toJSON(), ...extra}),
    });
    if (!finish.ok) throw await problem(finish);
    window.location.href = (await finish.json()).redirect;
  } catch (error) {
    errorBox.textContent = error.message || String(error);
    errorBox.classList.add("error");  // styled (and found by ".error") only while it has something to say
    errorBox.hidden = false;
  }
}

async function problem(response) {
  try {
    const body = await response.json();
    if (body.detail && body.detail.code === "AUTH_REAUTHENTICATION_REQUIRED") {
      window.location.href = "/mfa/verify?next=" + encodeURIComponent(window.location.pathname);
    }
    return new Error((body.detail && body.detail.message) || "Something went wrong.");
  } catch (_) {
    return new Error("Something went wrong (" + response.status + ").");
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-passkey]");
  if (button) {
    event.preventDefault();
    passkeyCeremony(button);
  }
});
