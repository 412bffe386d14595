// The demo shop page's own interactions (index.html). A file of its own, not inline: the
// pages' Content-Security-Policy allows scripts from the service only.
// Demo-only interactions of the product page (the chat widget is independent of them).
(function () {
  var toast = document.getElementById('toast');
  var timer = null;
  function say(text) {
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(function () { toast.hidden = true; }, 2200);
  }
  document.querySelectorAll('.chips').forEach(function (group) {
    group.addEventListener('click', function (ev) {
      var chip = ev.target.closest('.chip');
      if (!chip) return;
      group.querySelectorAll('.chip').forEach(function (c) { c.setAttribute('aria-pressed', String(c === chip)); });
    });
  });
  document.querySelectorAll('[data-demo]').forEach(function (b) {
    b.addEventListener('click', function () { say('这是演示页面，暂不支持下单，有问题可以咨询客服哦～'); });
  });
  document.getElementById('ask').addEventListener('click', function () {
    if (window.AutoresponderWidget) window.AutoresponderWidget.open();
  });
})();
