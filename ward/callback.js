// Where the OpenID provider sends the browser back: the code is exchanged for tokens (with the
// PKCE verifier kept before leaving), then the page the nurse asked for opens again, without the
// code in its address.
import { openId } from "/ward/ward.js";

try {
  const manager = await openId();
  const user = await manager.signinRedirectCallback();
  location.replace(user.state || "/ward/");
} catch (error) {
  const message = document.querySelector("#message");
  message.setAttribute("role", "alert");
  message.textContent = `Sign-in failed: ${error.message}`;
}
