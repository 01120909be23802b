// Progressive enhancement: a "Copy" button next to values marked with data-copy-target.
// Without JavaScript the button stays hidden and the value can be selected and copied by hand.
(function () {
  "use strict";

  function valueOf(element) {
    // A form field (the Entra ID settings' addresses) holds its text in its value, not in its content.
    return ("value" in element && element.tagName !== "BUTTON" ? element.value : element.textContent).trim();
  }

  function selectText(element) {
    if (typeof element.select === "function") {
      element.select();
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copy(text, element) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Older browsers and plain-http pages: copy the selection the old way.
    selectText(element);
    return document.execCommand("copy") ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function announce(button, text) {
    var status = button.parentNode.querySelector(".copy-status");
    if (status) {
      status.textContent = text;
      window.setTimeout(function () { status.textContent = ""; }, 4000);
    }
  }

  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (!target) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      copy(valueOf(target), target).then(
        function () { announce(button, button.getAttribute("data-copied-label")); },
        function () {
          selectText(target);
          announce(button, button.getAttribute("data-failed-label"));
        }
      );
    });
  });
})();
