/*
 * Embeddable chat widget of the auto-responder.
 *
 *   <script src="https://host/widget.js" data-shop="default"></script>
 *
 * data-shop    the shop id (default "default")
 * data-buyer   the buyer id the token below is bound to (ignored without data-token)
 * data-token   a buyer token signed by the shop's backend (shops with a secret)
 * data-server  the service origin, e.g. "https://chat.example.com" (default: the origin
 *              this script was loaded from; http -> ws, https -> wss)
 * data-title   the panel title (default "在线客服")
 *
 * Without a signed token the widget uses only its own random id, kept in localStorage per
 * shop. It never takes a buyer id from the page's address: a link such as
 * …/item.html?buyer=alice would fix a victim's id to one the sender knows, and the sender
 * could then read the agent's replies to the victim. A page that knows its buyer passes
 * data-buyer with data-token, the token signed by the shop's backend for that id.
 *
 * Everything lives in a shadow root (no clash with the shop page's CSS), styled by
 * widget.css from beside this script; all text from the buyer, the bot and agents is
 * inserted with textContent. No dependencies, no build step.
 */
(function () {
  'use strict';

  if (window.AutoresponderWidget && window.AutoresponderWidget.__loaded) return;

  var MAX_CHARS = 2000;
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 10000;
  var HISTORY_LIMIT = 100;
  // A message the service could not save (`unavailable`) is sent again with the same id, after
  // RESEND_FIRST_MS, then twice that…, at most RESEND_TIMES times; the service answers a
  // resend once, whether or not the first try was saved after all.
  var RESEND_FIRST_MS = 1000;
  var RESEND_TIMES = 3;
  var PENDING_LIMIT = 50;

  var script = document.currentScript || (function () {
    var all = document.querySelectorAll('script[src*="widget.js"]');
    return all.length ? all[all.length - 1] : null;
  })();
  var ds = (script && script.dataset) || {};

  var shop = (ds.shop || 'default').trim() || 'default';
  var token = ds.token || '';
  var title = ds.title || '在线客服';

  // ---------------------------------------------------------------- storage helpers
  function storageGet(store, key) {
    try { return window[store].getItem(key); } catch (e) { return null; }
  }
  function storageSet(store, key, value) {
    try { window[store].setItem(key, value); } catch (e) { /* private mode, quota */ }
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    if (window.crypto && window.crypto.getRandomValues) {
      window.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    var hex = '';
    for (var j = 0; j < bytes.length; j++) hex += (bytes[j] < 16 ? '0' : '') + bytes[j].toString(16);
    return 'v-' + hex;
  }

  function resolveBuyer() {
    if (token && ds.buyer && ds.buyer.trim()) return ds.buyer.trim();
    if (ds.buyer && !token && window.console) {
      console.warn('autoresponder widget: data-buyer is ignored without data-token (a signed buyer token)');
    }
    var key = 'autoresponder:buyer:' + shop;
    var id = storageGet('localStorage', key);
    if (!id) {
      id = randomId();
      storageSet('localStorage', key, id);
    }
    return id;
  }
  var buyer = resolveBuyer();

  function serverBase() {
    var base;
    try {
      if (ds.server) base = new URL(ds.server, window.location.href);
      else if (script && script.src) base = new URL(script.src, window.location.href);
      else base = new URL(window.location.href);
    } catch (e) {
      base = new URL(window.location.href);
    }
    var secure = base.protocol === 'https:' || base.protocol === 'wss:';
    var prefix = '';
    if (ds.server) prefix = base.pathname.replace(/\/+$/, '');
    return (secure ? 'wss://' : 'ws://') + base.host + prefix;
  }

  function socketUrl() {
    var q = 'shop=' + encodeURIComponent(shop) + '&buyer=' + encodeURIComponent(buyer);
    if (token) q += '&token=' + encodeURIComponent(token);
    return serverBase() + '/ws/buyer?' + q;
  }

  // ---------------------------------------------------------------- persisted state
  // The log of this tab survives navigation between pages of the shop (sessionStorage).
  var stateKey = 'autoresponder:chat:' + shop + ':' + buyer;
  var activeKey = 'autoresponder:active:' + shop + ':' + buyer;
  var saved = (function () {
    try {
      var raw = storageGet('sessionStorage', stateKey);
      var obj = raw ? JSON.parse(raw) : null;
      if (obj && Array.isArray(obj.log) && Array.isArray(obj.seen)) return obj;
    } catch (e) { /* corrupted: start afresh */ }
    return { log: [], seen: [], queue: null, open: false };
  })();
  var seen = new Set(saved.seen);

  function persist() {
    var obj = {
      log: saved.log.slice(-HISTORY_LIMIT),
      seen: Array.from(seen).slice(-500),
      queue: saved.queue,
      open: saved.open
    };
    saved.log = obj.log;
    storageSet('sessionStorage', stateKey, JSON.stringify(obj));
  }

  // ---------------------------------------------------------------- DOM

  function el(tag, cls, attrs) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (attrs) {
      for (var k in attrs) {
        if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]);
      }
    }
    return node;
  }

  // The stylesheet beside this script (a file, not inline, so pages with a strict
  // Content-Security-Policy allow it); the widget shows once it is loaded (or failed).
  function stylesheetUrl() {
    try {
      if (script && script.src) return new URL('widget.css', script.src).href;
    } catch (e) { /* fall through */ }
    return '/widget.css';
  }

  var host = el('div', null, { id: 'autoresponder-widget', 'data-shop': shop });
  var shadow = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;
  var stylesheet = el('link', null, { rel: 'stylesheet', href: stylesheetUrl() });
  shadow.appendChild(stylesheet);

  var root = el('div', 'ar-root');
  root.hidden = true;
  function reveal() { root.hidden = false; }
  stylesheet.addEventListener('load', reveal);
  stylesheet.addEventListener('error', reveal);
  shadow.appendChild(root);

  var launcher = el('button', 'launcher', { type: 'button', 'data-testid': 'chat-launcher', 'aria-label': '联系在线客服' });
  var launcherIcon = el('span', 'icon', { 'aria-hidden': 'true' });
  launcherIcon.textContent = '💬';
  var launcherText = el('span', 'label');
  launcherText.textContent = '联系客服';
  var badge = el('span', 'badge', { 'aria-label': '未读消息' });
  badge.hidden = true;
  launcher.append(launcherIcon, launcherText, badge);

  var panel = el('section', 'panel', { 'data-testid': 'chat-panel', role: 'dialog', 'aria-label': title });
  panel.hidden = true;

  var head = el('div', 'head');
  var avatar = el('div', 'avatar', { 'aria-hidden': 'true' });
  avatar.textContent = '🛍️';
  var titles = el('div', 'titles');
  var titleEl = el('div', 'title');
  titleEl.textContent = title;
  var statusEl = el('div', 'status', { 'data-testid': 'chat-status', 'data-state': 'idle', role: 'status' });
  statusEl.textContent = '未连接';
  titles.append(titleEl, statusEl);
  var closeBtn = el('button', 'close', { type: 'button', 'aria-label': '收起对话窗口', title: '收起' });
  closeBtn.textContent = '×';
  head.append(avatar, titles, closeBtn);

  var queueEl = el('div', 'queue', { 'data-testid': 'chat-queue', role: 'status', 'aria-live': 'polite' });
  queueEl.hidden = true;

  var log = el('div', 'log', { 'data-testid': 'chat-log', role: 'log', 'aria-live': 'polite' });
  var empty = el('div', 'empty');
  empty.textContent = '您好，有什么可以帮您？';
  log.appendChild(empty);

  var composer = el('form', 'composer', { novalidate: '' });
  var input = el('textarea', null, {
    'data-testid': 'chat-input', rows: '1', maxlength: String(MAX_CHARS),
    placeholder: '请输入您的问题，Enter 发送', 'aria-label': '输入消息'
  });
  var sendBtn = el('button', null, { type: 'submit', 'data-testid': 'chat-send' });
  sendBtn.textContent = '发送';
  sendBtn.disabled = true;
  composer.append(input, sendBtn);

  var foot = el('div', 'foot');
  var hint = el('span', 'hint');
  hint.textContent = 'Shift+Enter 换行';
  var count = el('span', 'count');
  count.textContent = '0/' + MAX_CHARS;
  foot.append(hint, count);

  panel.append(head, queueEl, log, composer, foot);
  root.append(launcher, panel);

  function mount() {
    if (!host.isConnected) document.body.appendChild(host);
  }
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);

  // ---------------------------------------------------------------- rendering
  function fmtTime(at) {
    var d = at ? new Date(at) : new Date();
    if (isNaN(d.getTime())) d = new Date();
    var hh = String(d.getHours()).padStart(2, '0');
    var mm = String(d.getMinutes()).padStart(2, '0');
    return hh + ':' + mm;
  }

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  }
  function scrollToBottom() {
    log.scrollTop = log.scrollHeight;
  }

  function renderMessage(m) {
    if (empty.parentNode) empty.remove();
    var row = el('div', 'msg', { 'data-testid': 'chat-message', 'data-from': m.from, 'data-kind': m.kind || '' });
    if (m.from === 'agent') {
      var who = el('div', 'who');
      who.textContent = '客服 ' + (m.agent || '');
      row.appendChild(who);
    }
    var bubble = el('div', 'bubble');
    bubble.textContent = m.text == null ? '' : String(m.text);
    row.appendChild(bubble);
    var time = el('div', 'time');
    time.textContent = fmtTime(m.at);
    row.appendChild(time);
    var stick = m.from === 'buyer' || nearBottom();
    log.appendChild(row);
    if (stick) scrollToBottom();
  }

  function addMessage(m, store) {
    renderMessage(m);
    if (store !== false) {
      saved.log.push({ from: m.from, kind: m.kind, text: m.text, agent: m.agent, at: m.at });
      persist();
    }
    if (m.from !== 'buyer' && panel.hidden) {
      unread += 1;
      badge.textContent = unread > 99 ? '99+' : String(unread);
      badge.hidden = false;
    }
  }

  function addNotice(text, level) {
    if (empty.parentNode) empty.remove();
    var n = el('div', 'notice', { 'data-testid': 'chat-notice', 'data-level': level || 'info' });
    n.textContent = text;
    var stick = nearBottom();
    log.appendChild(n);
    if (stick) scrollToBottom();
  }

  var unread = 0;
  var queueHideTimer = null;

  function showQueue(status, text) {
    clearTimeout(queueHideTimer);
    if (!text) {
      queueEl.hidden = true;
      queueEl.textContent = '';
      return;
    }
    queueEl.setAttribute('data-status', status);
    queueEl.textContent = text;
    queueEl.hidden = false;
    if (status === 'resolved') {
      queueHideTimer = setTimeout(function () { queueEl.hidden = true; }, 15000);
    }
  }

  function queueText(f) {
    if (f.text) return String(f.text);
    if (f.status === 'queued') {
      if (typeof f.ahead === 'number' && f.ahead > 0) {
        var t = '前面还有 ' + f.ahead + ' 位，请您稍候…';
        if (typeof f.wait_seconds === 'number' && f.wait_seconds > 0) {
          t = '前面还有 ' + f.ahead + ' 位，预计等待约 ' + Math.max(1, Math.round(f.wait_seconds / 60)) + ' 分钟';
        }
        return t;
      }
      return '正在为您转接人工客服，请稍候…';
    }
    if (f.status === 'claimed') return '客服' + (f.agent || '') + '已接入，请问有什么可以帮您？';
    if (f.status === 'resolved') return '本次人工服务已结束，感谢您的耐心。还有问题可以随时留言哦～';
    return '';
  }

  var STATUS_TEXT = {
    idle: '未连接',
    connecting: '连接中…',
    open: '在线',
    closed: '连接已断开，正在重新连接…'
  };
  function setStatus(state, text) {
    statusEl.setAttribute('data-state', state);
    statusEl.textContent = text || STATUS_TEXT[state] || '';
  }

  // Restore this tab's earlier log.
  saved.log.forEach(function (m) { renderMessage(m); });
  if (saved.queue && saved.queue.status !== 'resolved') showQueue(saved.queue.status, saved.queue.text);

  // ---------------------------------------------------------------- connection
  var ws = null;
  var attempt = 0;
  var reconnectTimer = null;
  var openedAt = 0;
  var wanted = false;      // the buyer opened the chat: keep a connection
  var outbox = [];         // frames written while disconnected
  var msgSeq = 0;
  // Ids are unique per page, so a resend is never taken for another message.
  var pageId = randomId().slice(2, 10);
  var pending = new Map(); // id -> { frame, resends }: sent, not yet answered

  function connect() {
    wanted = true;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    setStatus('connecting');
    var sock;
    try {
      sock = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = function () {
      if (ws !== sock) return;
      openedAt = Date.now();
      setStatus('open');
      while (outbox.length && sock.readyState === WebSocket.OPEN) sock.send(outbox.shift());
    };
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      var frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      if (frame && typeof frame === 'object') handleFrame(frame);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      if (openedAt && Date.now() - openedAt > 5000) attempt = 0;
      openedAt = 0;
      if (wanted) scheduleReconnect();
      else setStatus('idle');
    };
    sock.onerror = function () { /* onclose follows */ };
  }

  function scheduleReconnect() {
    clearTimeout(reconnectTimer);
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempt));
    var delay = Math.round(base * (0.8 + Math.random() * 0.4));
    delay = Math.min(delay, BACKOFF_MAX_MS);
    attempt += 1;
    var secs = Math.max(1, Math.round(delay / 1000));
    setStatus('closed', '连接已断开，' + secs + ' 秒后重新连接…');
    reconnectTimer = setTimeout(connect, delay);
  }

  window.addEventListener('online', function () {
    if (wanted && !ws) { attempt = 0; connect(); }
  });

  function send(frame) {
    var data = JSON.stringify(frame);
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(data);
    } else {
      outbox.push(data);
      addNotice('网络连接中，消息将在连接恢复后发送', 'info');
      connect();
    }
  }

  // ---------------------------------------------------------------- frames
  var ERROR_TEXT = {
    bad_request: '消息没能发送成功，请稍后重试。',
    too_large: '消息太长了，请精简后再发送（最多 ' + MAX_CHARS + ' 字）。',
    rate_limited: '您发送得有点快，请稍等几秒再发哦。',
    unavailable: '系统有点忙，刚才的消息可能没有送达，请稍后再试一次。'
  };

  function answered(id) {
    if (typeof id === 'string') pending.delete(id);
  }

  // Schedules the resend of a message the service could not save; false when it is not ours
  // or was sent again often enough.
  function resendLater(id) {
    var entry = typeof id === 'string' ? pending.get(id) : null;
    if (!entry || entry.resends >= RESEND_TIMES) return false;
    var delay = RESEND_FIRST_MS * Math.pow(2, entry.resends);
    entry.resends += 1;
    addNotice('消息暂未送达，' + Math.round(delay / 1000) + ' 秒后自动重发（第 ' + entry.resends +
      ' 次）…', 'retry');
    setTimeout(function () {
      if (pending.get(id) === entry) send(entry.frame);
    }, delay);
    return true;
  }

  function handleFrame(f) {
    if (f.type !== 'error' && f.in_reply_to !== undefined) answered(f.in_reply_to);
    switch (f.type) {
      case 'reply': {
        var kind = typeof f.kind === 'string' ? f.kind : 'answer';
        if (f.id !== undefined && f.id !== null) {
          var key = String(f.conversation || '') + '#' + String(f.id);
          if (seen.has(key)) return;
          seen.add(key);
        }
        addMessage({
          from: kind === 'agent' ? 'agent' : 'bot',
          kind: kind,
          text: f.text,
          agent: f.agent,
          at: f.at
        });
        break;
      }
      case 'queue': {
        var status = String(f.status || '');
        var text = queueText(f);
        saved.queue = { status: status, text: text };
        persist();
        showQueue(status, text);
        break;
      }
      case 'error': {
        if (f.code === 'unavailable' && resendLater(f.in_reply_to)) break;
        answered(f.in_reply_to);
        addNotice(ERROR_TEXT[f.code] || '出了点小问题，请稍后再试。', 'error');
        break;
      }
      default:
        // Unknown frame types are ignored (the contract may grow).
        break;
    }
  }

  // ---------------------------------------------------------------- input
  function updateComposer() {
    var len = input.value.length;
    count.textContent = len + '/' + MAX_CHARS;
    count.setAttribute('data-over', len > MAX_CHARS ? '1' : '0');
    sendBtn.disabled = input.value.trim() === '' || len > MAX_CHARS;
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight + 2, 96) + 'px';
  }

  function submit() {
    var text = input.value.trim();
    if (!text) return;
    if (text.length > MAX_CHARS) text = text.slice(0, MAX_CHARS);
    msgSeq += 1;
    var id = 'w-' + pageId + '-' + msgSeq;
    var frame = { type: 'message', text: text, id: id };
    pending.set(id, { frame: frame, resends: 0 });
    if (pending.size > PENDING_LIMIT) pending.delete(pending.keys().next().value);
    addMessage({ from: 'buyer', kind: 'message', text: text, at: new Date().toISOString() });
    send(frame);
    input.value = '';
    updateComposer();
    input.focus();
  }

  composer.addEventListener('submit', function (ev) {
    ev.preventDefault();
    submit();
  });
  input.addEventListener('input', updateComposer);
  input.addEventListener('keydown', function (ev) {
    // Enter sends; Shift+Enter is a new line; Enter while an IME is composing picks a word.
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      submit();
    }
  });

  // ---------------------------------------------------------------- open / close
  function open() {
    mount();
    panel.hidden = false;
    launcher.hidden = true;
    root.setAttribute('data-open', '1');
    unread = 0;
    badge.hidden = true;
    saved.open = true;
    persist();
    storageSet('sessionStorage', activeKey, '1');
    connect();
    scrollToBottom();
    setTimeout(function () { try { input.focus(); } catch (e) { /* ignore */ } }, 0);
  }

  function close() {
    panel.hidden = true;
    launcher.hidden = false;
    root.removeAttribute('data-open');
    saved.open = false;
    persist();
    launcher.focus();
  }

  launcher.addEventListener('click', open);
  closeBtn.addEventListener('click', close);
  panel.addEventListener('keydown', function (ev) {
    if (ev.key === 'Escape') close();
  });

  // A tab that already chatted keeps its connection across the shop's pages, so agent
  // replies arrive even while the panel is closed.
  if (storageGet('sessionStorage', activeKey) === '1') {
    if (saved.open) open();
    else connect();
  }

  window.AutoresponderWidget = {
    __loaded: true,
    open: open,
    close: close,
    shop: shop,
    buyer: buyer
  };
})();
