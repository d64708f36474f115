(function () {
  var button = document.getElementById("copy");
  var secret = document.getElementById("secret");
  if (!button || !secret) return;
  function select() {
    var range = document.createRange();
    range.selectNodeContents(secret);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  // Without the clipboard API (plain http from another host): select the text and try the old
  // copy command; if even that is refused, the selection is ready for Ctrl+C.
  function fallback() {
    select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    button.textContent = copied ? "Copied" : "Selected: press Ctrl+C";
  }
  button.addEventListener("click", function () {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(secret.textContent).then(function () {
        button.textContent = "Copied";
      }, fallback);
    } else {
      fallback();
    }
  });
  button.hidden = false;
})();
