// The pages mailed links open, in headless Chromium with JavaScript off:
// register -> the mailed link -> confirm -> sign in through the API, and
// reset -> the mailed link -> a refused password, then a good one -> sign in.
// Run by scripts/checks/browser.sh, which starts the server and sets:
// SUMA_API (the server), SUMA_MAIL_DIR (its mail files), SUMA_ARTIFACTS
// (where screenshots go), SUMA_NODE_MODULES (playwright-core), CHROMIUM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const require = createRequire(path.join(process.env.SUMA_NODE_MODULES, '/'));
const { chromium } = require('playwright-core');

const API = process.env.SUMA_API;
const MAIL_DIR = process.env.SUMA_MAIL_DIR;
const ARTIFACTS = process.env.SUMA_ARTIFACTS;
const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'a completely new passphrase';

let browser;
let context;
const cspIssues = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  // Without JavaScript: the pages are plain forms.
  context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 800, height: 700 } });
});

after(async () => {
  await browser?.close();
});

async function newPage() {
  const page = await context.newPage();
  // Anything the Content-Security-Policy blocked (our own style included) is a failure.
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspIssues.push(m.text());
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Audits.enable');
  cdp.on('Audits.issueAdded', (e) => {
    if (e.issue.code === 'ContentSecurityPolicyIssue') cspIssues.push(JSON.stringify(e.issue.details));
  });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function api(route, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(API + route, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

/** The link to `/${kind}?token=` in the `n`-th readable mail file to `to`. */
async function mailedLink(to, kind, n = 1) {
  for (let i = 0; i < 200; i++) {
    const files = fs.existsSync(MAIL_DIR)
      ? fs.readdirSync(MAIL_DIR).filter((f) => f.endsWith('.txt')).sort()
      : [];
    const links = files
      .map((f) => fs.readFileSync(path.join(MAIL_DIR, f), 'utf8'))
      .filter((t) => t.startsWith(`To: ${to}\n`))
      .flatMap((t) => t.split('\n').filter((l) => l.includes(`/${kind}?token=`)));
    if (links.length >= n) return links[n - 1].trim();
    await sleep(50);
  }
  throw new Error(`no mail #${n} with a ${kind} link to ${to} in ${MAIL_DIR}`);
}

/** Submits a form by its button (found by its accessible name) and returns the answer. */
async function submit(page, button) {
  const answer = page.waitForResponse((r) => r.request().method() === 'POST');
  await page.getByRole('button', { name: button }).click();
  const res = await answer;
  await page.waitForLoadState();
  return res;
}

function assertPageHeaders(res) {
  const h = res.headers();
  assert.match(h['content-type'], /^text\/html/);
  assert.match(h['content-security-policy'], /^default-src 'none';/);
  assert.match(h['content-security-policy'], /form-action 'self'/);
  assert.equal(h['cache-control'], 'no-store');
  assert.equal(h['referrer-policy'], 'no-referrer');
}

function uniqueEmail(what) {
  return `${what}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
}

test('register, open the mailed link, confirm, sign in', async () => {
  const email = uniqueEmail('browser-verify');
  const reg = await api('/api/v1/auth/register', {
    email, password: PASSWORD, consents: { terms: true, privacy: true },
  });
  assert.equal(reg.status, 202, reg.text);

  const link = await mailedLink(email, 'verify-email');
  const page = await newPage();
  const opened = await page.goto(link);
  assert.equal(opened.status(), 200);
  assertPageHeaders(opened);
  await assert.doesNotReject(page.getByRole('heading', { name: 'Confirm your email address' }).waitFor());
  await shot(page, '01-verify-email');

  // Opening the link spent nothing.
  const early = await api('/api/v1/auth/login', { email, password: PASSWORD });
  assert.equal(early.status, 403, early.text);
  assert.equal(early.json.code, 'email_not_verified');

  const confirmed = await submit(page, 'Confirm my email address');
  assert.equal(confirmed.status(), 200);
  assertPageHeaders(confirmed);
  await page.getByRole('heading', { name: 'Email address confirmed' }).waitFor();
  await shot(page, '02-email-confirmed');

  const login = await api('/api/v1/auth/login', { email, password: PASSWORD });
  assert.equal(login.status, 200, login.text);
  const me = await api('/api/v1/auth/me', undefined, login.json.access_token);
  assert.equal(me.status, 200);
  assert.equal(me.json.email, email);
  assert.equal(me.json.email_verified, true);
  await page.close();
});

test('ask for a reset, open the mailed link, a refused password, a new password, sign in', async () => {
  const email = uniqueEmail('browser-reset');
  await api('/api/v1/auth/register', { email, password: PASSWORD, consents: { terms: true, privacy: true } });
  const verifyLink = await mailedLink(email, 'verify-email');
  const token = new URL(verifyLink).searchParams.get('token');
  assert.equal((await api('/api/v1/auth/verify-email', { token })).status, 200);

  // The reset page without a token asks for the address (the link base is the mailed one).
  const base = new URL(verifyLink).origin;
  const page = await newPage();
  const form = await page.goto(`${base}/reset-password`);
  assert.equal(form.status(), 200);
  assertPageHeaders(form);
  await page.getByLabel('Email address').fill(email);
  await shot(page, '03-reset-request');
  const requested = await submit(page, 'Mail me a reset link');
  assert.equal(requested.status(), 200);
  await page.getByRole('heading', { name: 'Check your mail' }).waitFor();
  await shot(page, '04-reset-requested');

  const link = await mailedLink(email, 'reset-password');
  const opened = await page.goto(link);
  assert.equal(opened.status(), 200);
  assertPageHeaders(opened);
  const field = page.getByLabel('New password');
  await shot(page, '05-reset-password');

  // A common password: 422, the policy's reason on the page, tied to the field.
  await field.fill('q1w2e3r4t5y6');
  const refused = await submit(page, 'Save the new password');
  assert.equal(refused.status(), 422);
  assertPageHeaders(refused);
  const alert = page.getByRole('alert');
  assert.match(await alert.innerText(), /too common/);
  assert.equal(await page.getByLabel('New password').getAttribute('aria-invalid'), 'true');
  await shot(page, '06-reset-password-refused');

  await page.getByLabel('New password').fill(NEW_PASSWORD);
  const saved = await submit(page, 'Save the new password');
  assert.equal(saved.status(), 200);
  await page.getByRole('heading', { name: 'Password changed' }).waitFor();
  await shot(page, '07-password-changed');

  assert.equal((await api('/api/v1/auth/login', { email, password: PASSWORD })).status, 401);
  const login = await api('/api/v1/auth/login', { email, password: NEW_PASSWORD });
  assert.equal(login.status, 200, login.text);
  await page.close();
});

test('no page had anything blocked by its Content-Security-Policy', () => {
  assert.deepEqual(cspIssues, []);
});
