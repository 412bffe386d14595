/*
 * Agent console of the auto-responder (served at /agent).
 *
 * Connects to /ws/agent?token=… on the same origin, shows the shop's queue of handoffs,
 * lets the agent claim cases, read the transcript, reply, add notes and resolve.
 * Protocol: ../shared/protocol.md (v1) and docs/protocol-extensions.md.
 * All text from buyers and agents is inserted with textContent.
 */
(function () {
  'use strict';

  var TOKEN_KEY = 'autoresponder:agent-token';
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 10000;
  var MAX_REPLY = 2000;

  var INTENT_LABELS = {
    complaint: '投诉',
    after_sale: '售后（退换货 / 退款）',
    human: '要求转人工'
  };
  var STATUS_LABELS = { online: '在线', away: '离开', busy: '忙碌', offline: '离线' };
  var CASE_STATUS_LABELS = { queued: '排队中', claimed: '处理中', resolved: '已解决' };

  // ------------------------------------------------------------------ helpers
  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function intentLabel(intent) {
    if (!intent) return '未识别';
    return INTENT_LABELS[intent] || String(intent);
  }

  function timeOf(at) {
    var t = Date.parse(at);
    return isNaN(t) ? null : t;
  }

  function fmtClock(at) {
    var t = timeOf(at);
    if (t === null) return '';
    var d = new Date(t);
    var now = new Date();
    var hms = String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0') +
      ':' + String(d.getSeconds()).padStart(2, '0');
    if (d.toDateString() === now.toDateString()) return hms;
    return (d.getMonth() + 1) + '月' + d.getDate() + '日 ' + hms.slice(0, 5);
  }

  function fmtDate(at) {
    var t = timeOf(at);
    if (t === null) return '';
    var d = new Date(t);
    return d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + '-' +
      String(d.getDate()).padStart(2, '0');
  }

  function fmtWait(since) {
    var t = timeOf(since);
    if (t === null) return '—';
    var s = Math.max(0, Math.floor((Date.now() - t) / 1000));
    if (s < 60) return s + ' 秒';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' 分 ' + String(s % 60).padStart(2, '0') + ' 秒';
    var h = Math.floor(m / 60);
    return h + ' 小时 ' + (m % 60) + ' 分';
  }

  function agentName(idOrName) {
    if (!idOrName) return '';
    if (state.me && state.me.id === idOrName) return state.me.name;
    var a = state.agents.get(idOrName);
    return a ? a.name : String(idOrName);
  }

  // ------------------------------------------------------------------ state
  var state = {
    token: '',
    ws: null,
    wanted: false,        // logged in: keep a connection
    authed: false,        // a hello arrived with the current token
    attempt: 0,
    reconnectTimer: null,
    openedAt: 0,
    me: null,             // {id, name}
    myStatus: 'online',
    shop: '',
    shopName: '',
    agents: new Map(),    // id -> {id, name, status}
    cases: new Map(),     // handoff id -> case
    prev: new Map(),      // cases known before the last reconnect (to merge live lines)
    byConv: new Map(),    // conversation -> handoff id
    liveNotes: new Map(), // buyer key -> [{text, agent, at}]
    claiming: [],         // handoff ids with a claim in flight (FIFO)
    selected: null,
    drafts: new Map(),    // handoff id -> unsent reply text
    pending: new Map(),   // reply id -> {conversation, text}
    unread: new Set(),    // handoff ids with buyer messages not yet looked at
    queuedTotal: null,    // cases queued in the shop, from the last queue_page
    nextPage: null,       // cursor of the next page of the queue, null at its end
    seq: 0
  };

  // ------------------------------------------------------------------ toasts
  function toast(text, level) {
    var box = $('toasts');
    var t = el('div', 'toast toast-' + (level || 'info'), text);
    t.setAttribute('data-testid', 'toast');
    t.setAttribute('role', 'status');
    box.appendChild(t);
    setTimeout(function () { t.classList.add('toast-out'); }, 4500);
    setTimeout(function () { t.remove(); }, 5000);
  }

  // ------------------------------------------------------------------ login
  function showLogin(error) {
    $('app').hidden = true;
    $('login').hidden = false;
    var err = $('login-error');
    if (error) {
      err.textContent = error;
      err.hidden = false;
    } else {
      err.hidden = true;
    }
    $('login-token').value = '';
    $('login-token').focus();
    document.title = '客服工作台';
  }

  function showApp() {
    $('login').hidden = true;
    $('app').hidden = false;
  }

  function login(token) {
    state.token = token;
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* ignore */ }
    state.wanted = true;
    state.authed = false;
    state.attempt = 0;
    $('app').hidden = true;
    $('login').hidden = false;
    $('login-error').hidden = true;
    $('login-submit').disabled = true;
    $('login-submit').textContent = '登录中…';
    connect();
  }

  function logout() {
    state.wanted = false;
    clearTimeout(state.reconnectTimer);
    var ws = state.ws;
    state.ws = null;
    if (ws) { try { ws.close(1000, 'logout'); } catch (e) { /* ignore */ } }
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
    state.token = '';
    state.authed = false;
    state.me = null;
    state.agents.clear();
    state.cases.clear();
    state.prev.clear();
    state.byConv.clear();
    state.liveNotes.clear();
    state.claiming = [];
    state.selected = null;
    state.drafts.clear();
    state.pending.clear();
    state.unread.clear();
    renderAll();
    showLogin();
  }

  // ------------------------------------------------------------------ connection
  function setConn(stateName, text) {
    var c = $('conn-status');
    c.setAttribute('data-state', stateName);
    c.textContent = text;
  }

  function connect() {
    if (!state.wanted) return;
    if (state.ws && (state.ws.readyState === WebSocket.OPEN || state.ws.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(state.reconnectTimer);
    setConn('connecting', '连接中…');
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var url = proto + '//' + location.host + '/ws/agent?token=' + encodeURIComponent(state.token);
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      onSocketGone(null);
      return;
    }
    state.ws = ws;
    ws.onopen = function () {
      if (state.ws !== ws) return;
      state.openedAt = Date.now();
    };
    ws.onmessage = function (ev) {
      if (state.ws !== ws) return;
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f && typeof f === 'object') handleFrame(f);
    };
    ws.onclose = function (ev) {
      if (state.ws !== ws) return;
      onSocketGone(ev && ev.code);
    };
    ws.onerror = function () { /* onclose follows */ };
  }

  // Close codes the server sends after accepting the token: going away, overloaded, try again
  // later. None of them says the token is wrong, so the console keeps it and reconnects.
  var RETRY_CODES = [1001, 1011, 1012, 1013];

  function onSocketGone(code) {
    state.ws = null;
    if (!state.wanted) return;
    if (state.authed && code === 1008) {
      // The token was revoked (or the shop removed) while the console was open.
      logout();
      showLogin('您的客服令牌已失效，请重新登录。');
      return;
    }
    if (!state.authed && RETRY_CODES.indexOf(code) < 0) {
      // Never got in with this token: a wrong token is refused with 401 before the upgrade
      // (the browser cannot tell that from a server that is down).
      state.wanted = false;
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
      $('login-submit').disabled = false;
      $('login-submit').textContent = '登录';
      showLogin('登录失败：令牌无效，或服务暂时无法连接，请检查后重试。');
      return;
    }
    if (state.openedAt && Date.now() - state.openedAt > 5000) state.attempt = 0;
    state.openedAt = 0;
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, state.attempt));
    var delay = Math.min(BACKOFF_MAX_MS, Math.round(base * (0.8 + Math.random() * 0.4)));
    state.attempt += 1;
    setConn('closed', '连接断开，' + Math.max(1, Math.round(delay / 1000)) + ' 秒后重连…');
    state.reconnectTimer = setTimeout(connect, delay);
  }

  window.addEventListener('online', function () {
    if (state.wanted && state.authed && !state.ws) { state.attempt = 0; connect(); }
  });

  function send(frame) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      toast('连接已断开，请等待重新连接后再操作', 'error');
      return false;
    }
    state.ws.send(JSON.stringify(frame));
    return true;
  }

  // ------------------------------------------------------------------ cases
  function lineKey(l) {
    var t = timeOf(l.at);
    return l.from + '\u0000' + l.text + '\u0000' + (t === null ? String(l.at || '') : t);
  }

  function addLines(c, lines) {
    if (!Array.isArray(lines)) return false;
    var added = false;
    for (var i = 0; i < lines.length; i++) {
      var src = lines[i];
      if (!src || typeof src !== 'object') continue;
      var l = {
        from: src.from === 'buyer' || src.from === 'agent' ? src.from : 'bot',
        text: src.text == null ? '' : String(src.text),
        at: src.at || '',
        agent: src.agent || src.agent_name || null
      };
      var k = lineKey(l);
      if (c.lineKeys.has(k)) continue;
      c.lineKeys.add(k);
      c.lines.push(l);
      added = true;
    }
    if (added) sortLines(c);
    return added;
  }

  function sortLines(c) {
    // Stable sort by time; a line without a readable time keeps its neighbour's time.
    var last = 0;
    var keyed = c.lines.map(function (l, i) {
      var t = timeOf(l.at);
      if (t === null) t = last; else last = t;
      return { l: l, t: t, i: i };
    });
    keyed.sort(function (a, b) { return a.t - b.t || a.i - b.i; });
    c.lines = keyed.map(function (k) { return k.l; });
  }

  function buyerKey(c) { return (c.shop || state.shop) + '\u0000' + c.buyer; }

  function upsertCase(h) {
    if (!h || typeof h !== 'object' || !h.id) return;
    var id = String(h.id);
    var status = h.status || 'queued';
    var mine = status === 'claimed' && state.me && h.claimed_by === state.me.id;
    if (status === 'claimed' && !mine) {
      // Someone else's case (the server should not send these): not ours to show.
      removeCase(id);
      return;
    }
    var old = state.cases.get(id) || state.prev.get(id) || null;
    var c = {
      id: id,
      shop: h.shop || state.shop,
      conversation: String(h.conversation || ''),
      buyer: String(h.buyer || ''),
      intent: h.intent || '',
      priority: h.priority === 'high' ? 'high' : 'normal',
      created_at: h.created_at || (old && old.created_at) || new Date().toISOString(),
      status: status,
      claimed_by: h.claimed_by || null,
      order_numbers: Array.isArray(h.order_numbers) ? h.order_numbers.map(String) : (old ? old.order_numbers : []),
      buyer_profile: h.buyer_profile && typeof h.buyer_profile === 'object' ? h.buyer_profile : (old ? old.buyer_profile : null),
      escalated: !!h.escalated,
      requeued: !!h.requeued,
      lines: [],
      lineKeys: new Set()
    };
    addLines(c, h.transcript);
    if (old) addLines(c, old.lines);
    state.cases.set(id, c);
    state.prev.delete(id);
    if (c.conversation) state.byConv.set(c.conversation, id);
    // A reply whose `sent` got lost across a reconnect but is in the transcript now.
    state.pending.forEach(function (p, pid) {
      if (p.conversation === c.conversation && c.lines.some(function (l) { return l.from === 'agent' && l.text === p.text; })) {
        state.pending.delete(pid);
      }
    });
    if (h.escalated && !mine && !(old && old.escalated)) toast('高优先级会话等待过久，请尽快接入（买家 ' + c.buyer + '）', 'warn');
    renderAll();
  }

  function removeCase(id) {
    var had = state.cases.delete(id);
    state.unread.delete(id);
    state.drafts.delete(id);
    if (state.selected === id) state.selected = null;
    return had;
  }

  function caseByConversation(conv) {
    var id = state.byConv.get(String(conv || ''));
    return id ? state.cases.get(id) || null : null;
  }

  function isMine(c) {
    return c.status === 'claimed' && state.me && c.claimed_by === state.me.id;
  }

  function firstBuyerText(c) {
    for (var i = 0; i < c.lines.length; i++) if (c.lines[i].from === 'buyer') return c.lines[i].text;
    return '';
  }
  function lastBuyerText(c) {
    for (var i = c.lines.length - 1; i >= 0; i--) if (c.lines[i].from === 'buyer') return c.lines[i].text;
    return '';
  }

  function queuedCases() {
    var list = [];
    state.cases.forEach(function (c) { if (c.status === 'queued') list.push(c); });
    list.sort(function (a, b) {
      var pa = a.priority === 'high' ? 0 : 1;
      var pb = b.priority === 'high' ? 0 : 1;
      if (pa !== pb) return pa - pb;
      var ta = timeOf(a.created_at) || 0;
      var tb = timeOf(b.created_at) || 0;
      return ta - tb || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    });
    return list;
  }

  function myCases() {
    var list = [];
    state.cases.forEach(function (c) { if (isMine(c)) list.push(c); });
    list.sort(function (a, b) { return (timeOf(a.created_at) || 0) - (timeOf(b.created_at) || 0); });
    return list;
  }

  // ------------------------------------------------------------------ frames
  function handleFrame(f) {
    switch (f.type) {
      case 'hello': onHello(f); break;
      case 'presence': onPresence(f); break;
      case 'handoff': upsertCase(f.handoff); break;
      case 'claimed': onClaimed(f); break;
      case 'buyer_message': onBuyerMessage(f); break;
      case 'sent': onSent(f); break;
      case 'note': onNote(f); break;
      case 'resolved': onResolved(f); break;
      case 'queue_page': onQueuePage(f); break;
      case 'error': onError(f); break;
      default: break; // unknown frames are ignored
    }
  }

  function onHello(f) {
    var reconnect = state.authed;
    state.authed = true;
    state.attempt = 0;
    var a = f.agent || {};
    state.me = { id: String(a.id || ''), name: String(a.name || a.id || '客服') };
    state.shop = String(f.shop || '');
    state.shopName = String(f.shop_name || f.shop || '');
    state.myStatus = f.status || 'online';
    state.agents.clear();
    (Array.isArray(f.agents) ? f.agents : []).forEach(function (x) {
      if (x && x.id) state.agents.set(String(x.id), { id: String(x.id), name: String(x.name || x.id), status: x.status || 'offline' });
    });
    // The server now resends every queued case and every case of mine: start from that,
    // keeping what we knew only to merge live lines that may be missing from a transcript.
    state.cases.forEach(function (c, id) { state.prev.set(id, c); });
    state.cases.clear();
    state.claiming = [];
    state.queuedTotal = null;
    state.nextPage = null;

    $('login-submit').disabled = false;
    $('login-submit').textContent = '登录';
    $('agent-name').textContent = state.me.name;
    $('me-avatar').textContent = state.me.name.slice(0, 1);
    $('shop-name').textContent = state.shopName;
    $('shop-name').title = state.shop;
    $('presence-select').value = STATUS_LABELS[state.myStatus] ? state.myStatus : 'online';
    setConn('open', '已连接');
    showApp();
    if (reconnect) toast('已重新连接', 'ok');
    renderAll();
  }

  function onPresence(f) {
    var id = String(f.agent || '');
    if (!id) return;
    var status = f.status || 'offline';
    if (state.me && id === state.me.id) {
      state.myStatus = status;
      if (STATUS_LABELS[status] && status !== 'offline') $('presence-select').value = status;
      return;
    }
    var a = state.agents.get(id) || { id: id, name: id, status: 'offline' };
    if (f.name) a.name = String(f.name);
    a.status = status;
    state.agents.set(id, a);
    renderAgents();
  }

  function onClaimed(f) {
    var id = String(f.handoff || '');
    var idx = state.claiming.indexOf(id);
    if (idx >= 0) state.claiming.splice(idx, 1);
    var c = state.cases.get(id);
    // `agent` is the agent id (the name comes in `agent_name`); tolerate a server that puts
    // the name there and sends no agent_name.
    var byMe = !!state.me && (f.agent === state.me.id || (f.agent_name === undefined && f.agent === state.me.name));
    if (byMe) {
      if (c) {
        c.status = 'claimed';
        c.claimed_by = state.me.id;
        if (!state.selected) state.selected = id;
        toast('已接入买家 ' + c.buyer + ' 的会话', 'ok');
      }
    } else if (c) {
      var who = f.agent_name || agentName(f.agent) || '其他同事';
      var wasMine = isMine(c);
      removeCase(id);
      toast((wasMine ? '您的会话（买家 ' : '买家 ') + c.buyer + ' 已由 ' + who + ' 接入', wasMine ? 'warn' : 'info');
    }
    renderAll();
  }

  function onBuyerMessage(f) {
    var c = (f.handoff && state.cases.get(String(f.handoff))) || caseByConversation(f.conversation);
    if (!c) return;
    addLines(c, [{ from: 'buyer', text: f.text, at: f.at || new Date().toISOString() }]);
    if (state.selected !== c.id || document.hidden) state.unread.add(c.id);
    renderAll();
  }

  function onSent(f) {
    var c = caseByConversation(f.conversation);
    if (f.id !== undefined && f.id !== null) state.pending.delete(String(f.id));
    if (c) {
      addLines(c, [{ from: 'agent', text: f.text, at: f.at || new Date().toISOString(), agent: state.me ? state.me.name : null }]);
    }
    renderAll();
  }

  function onNote(f) {
    var c = caseByConversation(f.conversation);
    var buyer = f.buyer ? String(f.buyer) : (c ? c.buyer : '');
    if (!buyer) return;
    var key = (c ? c.shop : state.shop) + '\u0000' + buyer;
    var list = state.liveNotes.get(key) || [];
    list.push({ text: String(f.text == null ? '' : f.text), agent: f.agent || '', at: f.at || new Date().toISOString() });
    state.liveNotes.set(key, list);
    if (c && state.selected === c.id) renderDetails();
  }

  // A page of the queue ended: the server sends the top of a long queue, not all of it.
  function onQueuePage(f) {
    state.queuedTotal = typeof f.queued === 'number' ? f.queued : null;
    state.nextPage = typeof f.next === 'string' ? f.next : null;
    renderQueue();
  }

  function loadMoreCases() {
    if (!state.nextPage) return;
    send({ type: 'more_cases', after: state.nextPage });
    state.nextPage = null;
    renderQueue();
  }

  function onResolved(f) {
    var id = String(f.handoff || '');
    var c = state.cases.get(id) || (f.conversation ? caseByConversation(f.conversation) : null);
    if (!c) return;
    var wasMine = isMine(c);
    removeCase(c.id);
    if (wasMine) toast('买家 ' + c.buyer + ' 的会话已结束', 'ok');
    renderAll();
  }

  function onError(f) {
    var code = String(f.code || '');
    var msg;
    switch (code) {
      case 'conflict': {
        msg = '手慢了一步：该会话已被其他同事接入';
        var id = state.claiming.shift();
        if (id) removeCase(id);
        break;
      }
      case 'not_found': {
        msg = '该会话已不存在，或不在您的名下';
        var nid = state.claiming.shift();
        if (nid) removeCase(nid);
        break;
      }
      case 'rate_limited': msg = '操作太频繁，请稍后再试'; break;
      case 'too_large': msg = '内容太长，请分段发送'; break;
      case 'unavailable': msg = '服务暂时不可用，刚才的操作可能没有成功，请稍后重试'; break;
      case 'bad_request': msg = '请求无效' + (f.message ? '：' + f.message : ''); break;
      default: msg = '出错了' + (f.message ? '：' + f.message : '');
    }
    toast(msg, 'error');
    renderAll();
  }

  // ------------------------------------------------------------------ actions
  function claim(id, button) {
    if (!send({ type: 'claim', handoff: id })) return;
    state.claiming.push(id);
    if (button) {
      button.disabled = true;
      button.textContent = '接入中…';
    }
  }

  function select(id) {
    var changed = state.selected !== id;
    state.selected = id;
    state.unread.delete(id);
    renderAll();
    if (changed) $('reply-input').focus();
  }

  function sendReply() {
    var c = state.selected && state.cases.get(state.selected);
    var input = $('reply-input');
    var text = input.value.trim();
    if (!c || !text) return;
    if (text.length > MAX_REPLY) {
      toast('回复太长了（最多 ' + MAX_REPLY + ' 字）', 'error');
      return;
    }
    state.seq += 1;
    var id = 'a-' + state.seq;
    if (!send({ type: 'reply', conversation: c.conversation, text: text, id: id })) return;
    state.pending.set(id, { conversation: c.conversation, text: text });
    input.value = '';
    state.drafts.delete(c.id);
    renderTranscript();
  }

  function sendNote() {
    var c = state.selected && state.cases.get(state.selected);
    var input = $('note-input');
    var text = input.value.trim();
    if (!c || !text) return;
    if (!send({ type: 'note', conversation: c.conversation, text: text })) return;
    input.value = '';
  }

  function resolveSelected() {
    var c = state.selected && state.cases.get(state.selected);
    if (!c) return;
    if (!send({ type: 'resolve', handoff: c.id })) return;
    var b = $('resolve-button');
    b.disabled = true;
    b.textContent = '正在结束…';
  }

  // ------------------------------------------------------------------ rendering
  function badge(text, cls) { return el('span', 'badge ' + cls, text); }

  function renderQueue() {
    var ul = $('queue-list');
    var list = queuedCases();
    ul.replaceChildren();
    list.forEach(function (c) {
      var li = el('li', 'queue-item prio-' + c.priority);
      li.setAttribute('data-testid', 'queue-item');
      li.setAttribute('data-handoff', c.id);
      li.setAttribute('data-priority', c.priority);

      var top = el('div', 'qi-top');
      top.appendChild(badge(c.priority === 'high' ? '高优先' : '普通', c.priority === 'high' ? 'b-high' : 'b-normal'));
      top.appendChild(el('span', 'qi-intent', intentLabel(c.intent)));
      if (c.escalated) top.appendChild(badge('超时升级', 'b-esc'));
      if (c.requeued) top.appendChild(badge('重新排队', 'b-req'));
      var wait = el('span', 'qi-wait', fmtWait(c.created_at));
      wait.setAttribute('data-since', c.created_at);
      wait.setAttribute('data-testid', 'queue-wait');
      wait.title = '已等待';
      top.appendChild(wait);
      li.appendChild(top);

      var buyer = el('div', 'qi-buyer', '买家 ' + c.buyer);
      li.appendChild(buyer);
      var preview = el('div', 'qi-preview', firstBuyerText(c) || '（无买家消息）');
      preview.setAttribute('data-testid', 'queue-preview');
      li.appendChild(preview);

      var btn = el('button', 'btn-claim', state.claiming.indexOf(c.id) >= 0 ? '接入中…' : '接入');
      btn.type = 'button';
      btn.setAttribute('data-testid', 'claim-button');
      btn.disabled = state.claiming.indexOf(c.id) >= 0;
      btn.addEventListener('click', function () { claim(c.id, btn); });
      li.appendChild(btn);
      ul.appendChild(li);
    });
    var total = state.queuedTotal !== null && state.queuedTotal > list.length ? state.queuedTotal : list.length;
    $('queue-count').textContent = total > list.length ? list.length + ' / ' + total : String(list.length);
    $('queue-empty').hidden = list.length > 0;
    $('queue-more').hidden = !state.nextPage;
    document.title = (list.length ? '(' + list.length + ') ' : '') + '客服工作台' +
      (state.shopName ? ' · ' + state.shopName : '');
  }

  function renderMine() {
    var ul = $('my-cases');
    var list = myCases();
    ul.replaceChildren();
    list.forEach(function (c) {
      var li = el('li', 'case-item prio-' + c.priority + (state.selected === c.id ? ' selected' : ''));
      li.setAttribute('data-testid', 'case-item');
      li.setAttribute('data-handoff', c.id);
      li.tabIndex = 0;
      li.setAttribute('role', 'button');
      li.setAttribute('aria-pressed', String(state.selected === c.id));
      var top = el('div', 'ci-top');
      top.appendChild(el('span', 'ci-buyer', c.buyer));
      top.appendChild(el('span', 'ci-intent', intentLabel(c.intent)));
      if (state.unread.has(c.id)) top.appendChild(badge('新消息', 'b-new'));
      li.appendChild(top);
      li.appendChild(el('div', 'ci-preview', lastBuyerText(c) || '—'));
      li.addEventListener('click', function () { select(c.id); });
      li.addEventListener('keydown', function (ev) {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); select(c.id); }
      });
      ul.appendChild(li);
    });
    $('mine-count').textContent = String(list.length);
    $('mine-empty').hidden = list.length > 0;
  }

  function renderAgents() {
    var ul = $('agents');
    ul.replaceChildren();
    var list = [];
    state.agents.forEach(function (a) { if (!state.me || a.id !== state.me.id) list.push(a); });
    var order = { online: 0, busy: 1, away: 2, offline: 3 };
    list.sort(function (a, b) { return (order[a.status] || 9) - (order[b.status] || 9) || (a.name < b.name ? -1 : 1); });
    list.forEach(function (a) {
      var li = el('li', 'agent status-' + a.status);
      li.setAttribute('data-agent', a.id);
      li.setAttribute('data-status', a.status);
      li.appendChild(el('span', 'dot'));
      li.appendChild(el('span', 'agent-name', a.name));
      li.appendChild(el('span', 'agent-status', STATUS_LABELS[a.status] || a.status));
      ul.appendChild(li);
    });
    $('agents-empty').hidden = list.length > 0;
  }

  function renderTranscript() {
    var box = $('transcript');
    var c = state.selected && state.cases.get(state.selected);
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    box.replaceChildren();
    if (!c) return;
    c.lines.forEach(function (l) {
      var row = el('div', 'line from-' + l.from);
      row.setAttribute('data-testid', 'transcript-line');
      row.setAttribute('data-from', l.from);
      var meta = el('div', 'meta');
      var who = l.from === 'buyer' ? '买家 ' + c.buyer : l.from === 'agent' ? '客服 ' + (l.agent || '') : '机器人';
      meta.appendChild(el('span', 'who', who));
      meta.appendChild(el('span', 'at', fmtClock(l.at)));
      row.appendChild(meta);
      row.appendChild(el('div', 'text', l.text));
      box.appendChild(row);
    });
    state.pending.forEach(function (p) {
      if (p.conversation !== c.conversation) return;
      var row = el('div', 'line from-agent pending');
      row.setAttribute('data-testid', 'transcript-pending');
      var meta = el('div', 'meta');
      meta.appendChild(el('span', 'who', '客服 ' + (state.me ? state.me.name : '')));
      meta.appendChild(el('span', 'at', '发送中…'));
      row.appendChild(meta);
      row.appendChild(el('div', 'text', p.text));
      box.appendChild(row);
    });
    if (atBottom || box.dataset.caseId !== c.id) box.scrollTop = box.scrollHeight;
    box.dataset.caseId = c.id;
  }

  function renderDetails() {
    var c = state.selected && state.cases.get(state.selected);
    var intentEl = $('case-intent');
    var orders = $('order-numbers');
    var profile = $('buyer-profile');
    orders.replaceChildren();
    profile.replaceChildren();
    $('note-input').disabled = !c;
    $('note-send').disabled = !c;
    $('details').classList.toggle('inactive', !c);
    if (!c) {
      intentEl.textContent = '—';
      orders.appendChild(el('span', 'muted', '—'));
      profile.appendChild(el('span', 'muted', '—'));
      return;
    }
    intentEl.textContent = intentLabel(c.intent) + (c.intent && INTENT_LABELS[c.intent] ? '（' + c.intent + '）' : '');

    if (c.order_numbers && c.order_numbers.length) {
      c.order_numbers.forEach(function (n) {
        var chip = el('button', 'order', n);
        chip.type = 'button';
        chip.title = '点击复制';
        chip.setAttribute('data-testid', 'order-number');
        chip.addEventListener('click', function () {
          if (navigator.clipboard) navigator.clipboard.writeText(n).then(function () { toast('订单号已复制', 'ok'); }, function () {});
        });
        orders.appendChild(chip);
      });
    } else {
      orders.appendChild(el('span', 'muted', '买家消息中未发现订单号'));
    }

    var bp = c.buyer_profile || {};
    var who = el('div', 'pf-buyer');
    who.appendChild(el('span', 'muted', '买家 ID '));
    who.appendChild(el('span', 'mono', c.buyer));
    profile.appendChild(who);

    var prevs = Array.isArray(bp.previous_handoffs) ? bp.previous_handoffs : [];
    profile.appendChild(el('h3', null, '历史转人工（' + prevs.length + '）'));
    if (prevs.length) {
      var ul = el('ul', 'pf-list');
      prevs.forEach(function (p) {
        var li = el('li');
        li.appendChild(el('span', 'pf-date', fmtDate(p.created_at)));
        li.appendChild(el('span', 'pf-intent', intentLabel(p.intent)));
        li.appendChild(el('span', 'pf-status', CASE_STATUS_LABELS[p.status] || p.status || ''));
        ul.appendChild(li);
      });
      profile.appendChild(ul);
    } else {
      profile.appendChild(el('p', 'muted', '首次转人工'));
    }

    var notes = [];
    var seen = new Set();
    (Array.isArray(bp.notes) ? bp.notes : []).concat(state.liveNotes.get(buyerKey(c)) || []).forEach(function (n) {
      if (!n) return;
      var k = String(n.text) + '\u0000' + (timeOf(n.at) || n.at);
      if (seen.has(k)) return;
      seen.add(k);
      notes.push(n);
    });
    profile.appendChild(el('h3', null, '备注（' + notes.length + '）'));
    if (notes.length) {
      var nl = el('ul', 'pf-notes');
      notes.forEach(function (n) {
        var li = el('li');
        li.setAttribute('data-testid', 'buyer-note');
        li.appendChild(el('div', 'note-text', n.text));
        li.appendChild(el('div', 'note-meta', agentName(n.agent) + ' · ' + fmtClock(n.at)));
        nl.appendChild(li);
      });
      profile.appendChild(nl);
    } else {
      profile.appendChild(el('p', 'muted', '暂无备注'));
    }
  }

  function renderCase() {
    var c = state.selected && state.cases.get(state.selected);
    if (c && !isMine(c)) { state.selected = null; c = null; }
    $('no-case').hidden = !!c;
    $('case-view').hidden = !c;
    // Keep an unsent reply per case when switching between cases.
    var input = $('reply-input');
    var shown = input.dataset.caseId || '';
    var now = c ? c.id : '';
    if (shown !== now) {
      if (shown && state.cases.has(shown) && input.value) state.drafts.set(shown, input.value);
      input.value = (now && state.drafts.get(now)) || '';
      input.dataset.caseId = now;
    }
    if (c) {
      $('case-buyer').textContent = '买家 ' + c.buyer;
      var pr = $('case-priority');
      pr.textContent = c.priority === 'high' ? '高优先' : '普通';
      pr.className = 'tag ' + (c.priority === 'high' ? 'b-high' : 'b-normal');
      $('case-intent-tag').textContent = intentLabel(c.intent);
      $('case-created').textContent = fmtClock(c.created_at);
      var age = $('case-age');
      age.setAttribute('data-since', c.created_at);
      age.textContent = fmtWait(c.created_at);
      var rb = $('resolve-button');
      if (rb.dataset.caseId !== c.id) {
        rb.disabled = false;
        rb.textContent = '结束会话';
        rb.dataset.caseId = c.id;
      }
    }
    renderTranscript();
    renderDetails();
  }

  function renderAll() {
    renderQueue();
    renderMine();
    renderAgents();
    renderCase();
  }

  function tick() {
    document.querySelectorAll('[data-since]').forEach(function (n) {
      n.textContent = fmtWait(n.getAttribute('data-since'));
    });
  }

  // ------------------------------------------------------------------ wiring
  function init() {
    $('login-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var t = $('login-token').value.trim();
      if (t) login(t);
    });
    $('logout').addEventListener('click', logout);
    $('queue-more').addEventListener('click', loadMoreCases);
    $('presence-select').addEventListener('change', function (ev) {
      var v = ev.target.value;
      if (send({ type: 'presence', status: v })) state.myStatus = v;
      else ev.target.value = state.myStatus;
    });
    $('reply-form').addEventListener('submit', function (ev) { ev.preventDefault(); sendReply(); });
    $('reply-input').addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        sendReply();
      }
    });
    $('note-form').addEventListener('submit', function (ev) { ev.preventDefault(); sendNote(); });
    $('resolve-button').addEventListener('click', resolveSelected);
    document.addEventListener('visibilitychange', function () {
      if (!document.hidden && state.selected && state.unread.delete(state.selected)) renderMine();
    });
    setInterval(tick, 1000);

    // ?token= (for tests and links) wins over the stored one; it is then removed from the
    // address bar so it does not linger in history or screenshots.
    var params = new URLSearchParams(location.search);
    var token = params.get('token');
    if (token) {
      params.delete('token');
      var rest = params.toString();
      try { history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash); } catch (e) { /* ignore */ }
    } else {
      try { token = sessionStorage.getItem(TOKEN_KEY); } catch (e) { token = null; }
    }
    renderAll();
    if (token) login(token);
    else showLogin();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
