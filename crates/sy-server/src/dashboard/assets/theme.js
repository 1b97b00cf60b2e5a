// Applies the theme saved by the toggle before the first paint (no flash).
(function () {
  try {
    var t = window.localStorage.getItem('switchyard-theme');
    if (t === 'light' || t === 'dark') document.documentElement.setAttribute('data-theme', t);
  } catch (e) { /* storage disabled: follow the system */ }
})();
