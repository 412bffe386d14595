// Browser test of the chat widget and the agent console, end to end against a running server.
//
//   node tests/browser/console.mjs --base http://127.0.0.1:8080 --token AGENT_TOKEN --screenshots DIR
//
// Drives Debian's chromium (/usr/bin/chromium, or $CHROMIUM) through playwright-core.
// A buyer complains in the widget, the agent claims the case in the console and replies,
// the buyer sees the reply; HTML typed by the buyer must show literally on both sides;
// the agent resolves the case. With --agents-file (the shop's agents.toml) and --admin-token,
// the agent's token is then replaced in the file and the rules reloaded: the open console
// must go back to its login with a notice. Exit 0 on success; on failure prints the failed step,
// saves DIR/failure-*.png and exits 1.

import { chromium } from 'playwright-core';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import crypto from 'node:crypto';

const STEP_TIMEOUT_MS = 10_000;

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else out[a.slice(2)] = argv[i + 1] !== undefined && !argv[i + 1].startsWith('--') ? argv[++i] : 'true';
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
if (!args.base || !args.token) {
  console.error('usage: node tests/browser/console.mjs --base http://127.0.0.1:PORT --token AGENT_TOKEN [--screenshots DIR]');
  process.exit(2);
}
const base = args.base.replace(/\/+$/, '');
const token = args.token;
const shotDir = path.resolve(args.screenshots || path.join(os.tmpdir(), 'autoresponder-browser'));
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const buyer = 'browser-' + crypto.randomBytes(6).toString('hex');
const COMPLAINT = '你们卖的是假货吧，我要投诉！';
const REPLY = '非常抱歉给您带来不好的体验，我马上为您核实处理';
const HTML_TEXT = '<b>x</b> 这是什么标签';

let browser = null;
let agentPage = null;
let shopPage = null;
const pageErrors = [];
let stepNo = 0;

async function step(name, fn) {
  stepNo += 1;
  const label = `step ${stepNo}: ${name}`;
  const started = Date.now();
  let timer;
  try {
    // Each step gets its own budget; locator waits use the same default timeout.
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${STEP_TIMEOUT_MS + 2000} ms`)), STEP_TIMEOUT_MS + 2000);
      }),
    ]);
    if (pageErrors.length) throw new Error('uncaught error in the page: ' + pageErrors.join(' | '));
  } catch (err) {
    const e = new Error(`${label} failed: ${err && err.message ? err.message.split('\n')[0] : err}`);
    e.detail = err;
    throw e;
  } finally {
    clearTimeout(timer);
  }
  console.log(`ok   ${label} (${Date.now() - started} ms)`);
}

async function failureShots() {
  const saved = [];
  for (const [name, page] of [['agent', agentPage], ['shop', shopPage]]) {
    if (!page || page.isClosed()) continue;
    const file = path.join(shotDir, `failure-${name}.png`);
    try {
      await page.screenshot({ path: file, fullPage: false, timeout: 5000 });
      saved.push(file);
    } catch { /* the page may be gone */ }
  }
  return saved;
}

/** Waits until the locator's single element has no `tag` element inside it. */
async function assertNoElement(locator, tag) {
  const n = await locator.evaluate((el, t) => el.querySelectorAll(t).length, tag);
  if (n !== 0) throw new Error(`${n} <${tag}> element(s) were created from message text`);
}

async function main() {
  await mkdir(shotDir, { recursive: true });
  console.log(`base ${base}, buyer ${buyer}, screenshots in ${shotDir}`);

  await step('launch chromium', async () => {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
      timeout: STEP_TIMEOUT_MS,
    });
    // Two separate contexts: the agent and the buyer share no storage.
    const agentCtx = await browser.newContext({ viewport: { width: 1360, height: 820 }, locale: 'zh-CN' });
    const shopCtx = await browser.newContext({ viewport: { width: 1280, height: 820 }, locale: 'zh-CN' });
    agentPage = await agentCtx.newPage();
    shopPage = await shopCtx.newPage();
    for (const [name, page] of [['agent', agentPage], ['shop', shopPage]]) {
      page.setDefaultTimeout(STEP_TIMEOUT_MS);
      page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
      // The pages' Content-Security-Policy allows only the service's files: anything it
      // blocks (an inline script or style) is a broken page.
      page.on('console', (msg) => {
        if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) {
          pageErrors.push(`${name}: ${msg.text()}`);
        }
      });
    }
  });

  const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

  await step('agent console logs in with the token', async () => {
    await agentPage.goto(`${base}/agent?token=${encodeURIComponent(token)}`, { waitUntil: 'domcontentloaded' });
    const name = byTestId(agentPage, 'agent-name');
    const refused = agentPage.locator('#login-error');
    await agentPage.locator('[data-testid="agent-name"]:visible, #login-error:visible').first().waitFor();
    if (await refused.isVisible()) {
      throw new Error(`the console shows a login error (wrong token, or /ws/agent refused): ${(await refused.textContent()).trim()}`);
    }
    await agentPage.waitForFunction(
      () => (document.querySelector('[data-testid="agent-name"]')?.textContent || '').trim() !== '');
    console.log(`     agent: ${(await name.textContent()).trim()}`);
  });

  await step('buyer opens the shop page and the chat', async () => {
    // The widget keeps its own random id in localStorage; the test gives it a known one
    // there, as a returning buyer would have. A buyer id in the page's address (a link
    // someone sent) must not replace it.
    await shopPage.addInitScript((id) => localStorage.setItem('autoresponder:buyer:default', id), buyer);
    const socket = shopPage.waitForEvent('websocket', (ws) => ws.url().includes('/ws/buyer'));
    await shopPage.goto(`${base}/?buyer=planted-by-a-link`, { waitUntil: 'domcontentloaded' });
    await byTestId(shopPage, 'chat-launcher').click();
    await byTestId(shopPage, 'chat-panel').waitFor({ state: 'visible' });
    const chatUrl = new URL((await socket).url());
    if (chatUrl.searchParams.get('buyer') !== buyer) {
      throw new Error(`the widget chats as ${chatUrl.searchParams.get('buyer')}, not its own id ${buyer}`);
    }
    // Styled by shop.css and widget.css, files the page's policy lets in.
    const colour = (selector) => shopPage.locator(selector).first().evaluate((el) => getComputedStyle(el).backgroundColor);
    for (const [selector, expected] of [['.demo-note', 'rgb(255, 244, 229)'], ['[data-testid="chat-panel"] .head', 'rgb(255, 90, 54)']]) {
      const found = await colour(selector);
      if (found !== expected) throw new Error(`${selector} is not styled: background ${found}, expected ${expected}`);
    }
  });

  await step('buyer is welcomed', async () => {
    await shopPage.locator('[data-testid="chat-message"][data-kind="welcome"]').first().waitFor({ state: 'visible' });
  });

  await step('buyer sends a complaint (Enter)', async () => {
    const input = byTestId(shopPage, 'chat-input');
    await input.fill(COMPLAINT);
    await input.press('Enter');
    await shopPage.locator('[data-testid="chat-message"][data-from="buyer"]', { hasText: COMPLAINT }).waitFor();
    if ((await input.inputValue()) !== '') throw new Error('the input was not cleared after sending');
  });

  await step('buyer is told the case went to a human', async () => {
    await shopPage.locator('[data-testid="chat-message"][data-kind="handoff"]').first().waitFor({ state: 'visible' });
  });

  await step('buyer sees the queue status', async () => {
    const q = byTestId(shopPage, 'chat-queue').filter({ hasText: /\S/ });
    await q.waitFor({ state: 'visible' });
    console.log(`     queue: ${(await q.textContent()).trim()}`);
  });

  let handoffId = null;
  const queueItem = () => agentPage.locator('[data-testid="queue-item"]', { hasText: COMPLAINT }).filter({ hasText: buyer });

  await step('the case appears in the agent queue', async () => {
    const item = queueItem();
    await item.waitFor({ state: 'visible' });
    handoffId = await item.getAttribute('data-handoff');
    if (!handoffId) throw new Error('queue-item has no data-handoff');
    console.log(`     handoff ${handoffId}, priority ${await item.getAttribute('data-priority')}`);
  });

  await step('agent claims the case', async () => {
    await queueItem().locator('[data-testid="claim-button"]').click();
    await agentPage.locator(`[data-testid="my-cases"] [data-testid="case-item"][data-handoff="${handoffId}"]`).waitFor({ state: 'visible' });
    await agentPage.locator(`[data-testid="queue-item"][data-handoff="${handoffId}"]`).waitFor({ state: 'detached' });
  });

  await step('agent opens the case and sees the transcript', async () => {
    await agentPage.locator(`[data-testid="case-item"][data-handoff="${handoffId}"]`).click();
    await agentPage.locator('[data-testid="transcript"] [data-testid="transcript-line"][data-from="buyer"]', { hasText: COMPLAINT }).waitFor();
    await byTestId(agentPage, 'order-numbers').waitFor({ state: 'visible' });
    await byTestId(agentPage, 'buyer-profile').waitFor({ state: 'visible' });
  });

  await step('agent replies', async () => {
    await byTestId(agentPage, 'reply-input').fill(REPLY);
    await byTestId(agentPage, 'reply-send').click();
    await agentPage.locator('[data-testid="transcript-line"][data-from="agent"]', { hasText: REPLY }).waitFor();
  });

  await step('buyer receives the agent reply', async () => {
    const msg = shopPage.locator('[data-testid="chat-message"][data-from="agent"]', { hasText: REPLY });
    await msg.waitFor({ state: 'visible' });
    const kind = await msg.first().getAttribute('data-kind');
    if (kind !== 'agent') throw new Error(`agent message has data-kind=${kind}`);
  });

  await step('buyer HTML is shown literally in the widget', async () => {
    await byTestId(shopPage, 'chat-input').fill(HTML_TEXT);
    await byTestId(shopPage, 'chat-send').click();
    const msg = shopPage.locator('[data-testid="chat-message"][data-from="buyer"]', { hasText: '<b>x</b>' });
    await msg.waitFor({ state: 'visible' });
    const text = await msg.first().textContent();
    if (!text.includes('<b>x</b>')) throw new Error(`message text is ${JSON.stringify(text)}`);
    await assertNoElement(byTestId(shopPage, 'chat-log'), 'b');
  });

  await step('buyer HTML is shown literally in the agent transcript', async () => {
    const line = agentPage.locator('[data-testid="transcript-line"][data-from="buyer"]', { hasText: '<b>x</b>' });
    await line.waitFor({ state: 'visible' });
    const text = await line.first().textContent();
    if (!text.includes('<b>x</b>')) throw new Error(`transcript line text is ${JSON.stringify(text)}`);
    await assertNoElement(byTestId(agentPage, 'transcript'), 'b');
  });

  await step('screenshots', async () => {
    await shopPage.screenshot({ path: path.join(shotDir, 'shop.png') });
    await agentPage.screenshot({ path: path.join(shotDir, 'agent.png') });
  });

  await step('agent resolves the case', async () => {
    await byTestId(agentPage, 'resolve-button').click();
    await agentPage.locator(`[data-testid="case-item"][data-handoff="${handoffId}"]`).waitFor({ state: 'detached' });
    await agentPage.locator(`[data-testid="queue-item"][data-handoff="${handoffId}"]`).waitFor({ state: 'detached' });
  });

  if (args['agents-file'] && args['admin-token']) {
    await step('a reload that revokes the token sends the console back to its login', async () => {
      const hash = crypto.createHash('sha256').update(token).digest('hex');
      const fresh = crypto.createHash('sha256').update(crypto.randomBytes(16)).digest('hex');
      const text = await readFile(args['agents-file'], 'utf8');
      if (!text.includes(hash)) throw new Error('the agent\'s token hash is not in the agents file');
      await writeFile(args['agents-file'], text.replace(hash, fresh));
      const reloaded = await fetch(`${base}/api/admin/reload`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${args['admin-token']}` },
      });
      if (!reloaded.ok) throw new Error(`the reload answered ${reloaded.status}`);
      const notice = agentPage.locator('#login-error');
      await notice.waitFor({ state: 'visible' });
      const said = (await notice.textContent()).trim();
      if (!said.includes('失效')) throw new Error(`the login says ${JSON.stringify(said)}`);
      const kept = await agentPage.evaluate(() => Object.values(sessionStorage).join(' '));
      if (kept.includes(token)) throw new Error('the revoked token is still stored');
    });
  }
}

let code = 0;
try {
  await main();
  console.log(`PASS (${stepNo} steps); screenshots: ${path.join(shotDir, 'shop.png')}, ${path.join(shotDir, 'agent.png')}`);
} catch (err) {
  code = 1;
  console.error(`FAIL ${err.message}`);
  if (err.detail && err.detail.stack) console.error(err.detail.stack.split('\n').slice(0, 8).join('\n'));
  if (pageErrors.length) console.error('page errors:\n  ' + pageErrors.join('\n  '));
  const saved = await failureShots();
  if (saved.length) console.error('saved ' + saved.join(', '));
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.exit(code);
