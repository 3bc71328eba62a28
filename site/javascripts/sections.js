/* Lesson pages fold their numbered sections into <details class="course-section">
   (grader/site/pages.py, fold_sections). This script keeps the folds out of a reader's way:
   a link to anything inside a folded section (the contents box, the sidebar, a search result,
   a link from another page) opens that section; the "Open all sections" button opens or folds
   them all; printing prints every section open. Without JavaScript the folds still open by a
   click on their bar, and Chromium opens them for a link by itself. */
(function () {
  "use strict";

  function sections() {
    return Array.prototype.slice.call(document.querySelectorAll("details.course-section"));
  }

  function reveal() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var target = id && document.getElementById(id);
    if (!target) return;
    var opened = false;
    for (var fold = target.closest("details"); fold; fold = fold.parentElement && fold.parentElement.closest("details")) {
      if (!fold.open) {
        fold.open = true;
        opened = true;
      }
    }
    if (opened) target.scrollIntoView();
  }

  function setUp() {
    var toggle = document.querySelector(".course-sections__toggle");
    if (toggle) {
      var label = function () {
        var allOpen = sections().every(function (fold) { return fold.open; });
        toggle.textContent = allOpen ? toggle.dataset.close : toggle.dataset.open;
      };
      toggle.hidden = false;
      toggle.addEventListener("click", function () {
        var open = !sections().every(function (fold) { return fold.open; });
        sections().forEach(function (fold) { fold.open = open; });
        label();
      });
      sections().forEach(function (fold) { fold.addEventListener("toggle", label); });
      label();
    }
    reveal();
  }

  window.addEventListener("hashchange", reveal);
  window.addEventListener("beforeprint", function () {
    sections().forEach(function (fold) { fold.open = true; });
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
