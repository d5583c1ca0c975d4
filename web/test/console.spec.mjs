// SPDX-License-Identifier: MIT
// lfp-web in a real browser (run.sh starts lfpd with the demo policy and a prompt filter in its own
// namespaces and cgroup, and lfp-web; this drives Debian's Chromium against it). The connects are
// real: run in the sandbox's cgroup and namespace through $IN_SANDBOX.
import { test, expect } from '@playwright/test';
import { execFile, spawn } from 'node:child_process';

const { LFP_WEB_URL, LFP_WEB_DOWN_URL, IN_SANDBOX, NOT_CURL, REMOTE, SCREENSHOT_DIR } = process.env;
for (const [k, v] of Object.entries({ LFP_WEB_URL, LFP_WEB_DOWN_URL, IN_SANDBOX, NOT_CURL, REMOTE }))
  if (!v) throw new Error(`${k} is not set: run web/test/run.sh`);

test.describe.configure({ mode: 'serial' });

// docs/img/web-NAME.png, only when run.sh was asked (UPDATE_SCREENSHOTS=1).
async function screenshot(page, name) {
  if (SCREENSHOT_DIR) await page.screenshot({ path: `${SCREENSHOT_DIR}/web-${name}.png` });
}

// A program in the sandbox; resolves with its exit code and output.
function inSandbox(...argv) {
  return new Promise((resolve) => {
    execFile(IN_SANDBOX, argv, { timeout: 15_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? -1) : 0, stdout, stderr }));
  });
}

// Opens the console at a page (the token's address sets the cookie, then "/" with the hash).
async function open(page, tab, url = LFP_WEB_URL) {
  await page.goto(`${url}#${tab}`);
  await expect(page.locator(`#${tab}`)).toBeVisible();
}

test('the state page lists the demo policy, searchable', async ({ page }) => {
  await open(page, 'state');
  await expect(page.locator('#providers')).toContainText('LFP per-app demo');
  await expect(page.locator('#sublayers')).toContainText('per-app web access');
  const connect = page.locator('table.filters[data-layer="ALE_AUTH_CONNECT_V4"] tbody tr');
  await expect(connect).toHaveCount(3);
  for (const name of ['curl may browse', 'no other program on port 80', 'ask: 8080'])
    await expect(connect.filter({ hasText: name })).toHaveCount(1);
  await expect(page.locator('#whoami')).toContainText('uid 0, admin');
  await screenshot(page, 'state');
  await page.fill('#state-search', 'CALLOUT_TERMINATING');
  await expect(connect).toHaveCount(1);
  await expect(connect).toContainText('ask: 8080');
  await page.fill('#state-search', 'no such filter anywhere');
  await expect(page.locator('#filters')).toContainText('No filter matches.');
});

test('arbitration draws the sublayers a hypothetical packet passes and the filter that decides', async ({ page }) => {
  await open(page, 'state');
  await page.locator('tr', { hasText: 'no other program on port 80' }).getByRole('button', { name: 'Arbitrate' }).click();
  await expect(page.locator('#arbitration')).toBeVisible();
  await page.getByRole('button', { name: 'Classify' }).click();
  await expect(page.locator('#arb-result .verdict')).toContainText('BLOCK');
  await expect(page.locator('#arb-result .verdict')).toContainText('no other program on port 80');
  await expect(page.locator('.sublayer.decider')).toContainText('per-app web access');
  await expect(page.locator('.step.decider')).toContainText('no other program on port 80');
  await expect(page.locator('.sublayer')).not.toHaveCount(0);
  // The same packet from /usr/bin/curl: the higher-weighted permit decides.
  await page.getByRole('button', { name: 'Add a field' }).click();
  const row = page.locator('#arb-fields > div').last();
  await row.locator('select').selectOption('ALE_APP_ID');
  await row.locator('input').fill('/usr/bin/curl');
  await page.getByRole('button', { name: 'Classify' }).click();
  await expect(page.locator('#arb-result .verdict')).toContainText('PERMIT');
  await expect(page.locator('.step.decider')).toContainText('curl may browse');
  await screenshot(page, 'arbitration');
});

test('a live block appears in the events view within a second, and the drops chart counts it', async ({ page }) => {
  await open(page, 'events');
  await expect(page.locator('#events-live')).toHaveAttribute('data-live', 'true');
  const blocked = page.locator('#events-table tbody tr', { hasText: 'no other program on port 80' });
  await expect(blocked).toHaveCount(0);
  const r = await inSandbox(NOT_CURL, '-sS', '-m', '3', `http://${REMOTE}/`);
  expect(r.code, 'the copy of curl was not blocked').not.toBe(0);
  const refused = Date.now();
  await expect(blocked).toHaveCount(1, { timeout: 1000 });
  console.log(`the block showed in the events view ${Date.now() - refused} ms after the connect was refused`);
  await expect(blocked).toContainText('CLASSIFY_DROP');
  await expect(blocked).toContainText(`${REMOTE}:80`);
  // The filter box.
  await page.fill('#events-filter', 'ALE_AUTH_CONNECT_V6');
  await expect(blocked).toHaveCount(0);
  await page.fill('#events-filter', `${REMOTE}:80 drop`);
  await expect(blocked).toHaveCount(1);
  await page.fill('#events-filter', '');
  await screenshot(page, 'events');
  await page.click('a[href="#drops"]');
  await expect(page.locator('#drops-chart polyline[data-layer="ALE_AUTH_CONNECT_V4"]')).toHaveCount(1);
  await expect(page.locator('#drops-legend')).toContainText('ALE_AUTH_CONNECT_V4: 1');
  await screenshot(page, 'drops');
});

test('the diagnose form confirms the block and names its filter', async ({ page }) => {
  await open(page, 'diagnose');
  await page.fill('input[name=remote]', `${REMOTE}:80`);
  await page.fill('input[name=window]', '300');
  await page.getByRole('button', { name: 'Diagnose' }).click();
  await expect(page.locator('#diag-result [data-verdict]')).toHaveText('confirmed');
  await expect(page.locator('#diag-result .diag-filter')).toContainText('no other program on port 80');
  await expect(page.locator('#diag-result')).toContainText('Repairs');
  await screenshot(page, 'diagnose');
  // And a destination nothing blocked: healthy (the log covers the window) or indeterminate, never confirmed.
  await page.fill('input[name=remote]', `${REMOTE}:443`);
  await page.fill('input[name=window]', '1');
  await page.getByRole('button', { name: 'Diagnose' }).click();
  await expect(page.locator('#diag-result [data-verdict]')).toHaveText(/healthy|indeterminate/);
});

test('a connect pended by the prompt filter goes through once the page answers allow', async ({ page }) => {
  await open(page, 'prompts');
  await expect(page.locator('#prompts-empty')).toBeVisible();
  let output = '';
  let exited = null;
  const client = spawn(IN_SANDBOX, ['socat', '-T3', '-', `TCP4:${REMOTE}:8080,connect-timeout=20`], { stdio: ['ignore', 'pipe', 'pipe'] });
  client.stdout.on('data', (d) => { output += d; });
  client.on('exit', (code) => { exited = code; });
  try {
    const row = page.locator('#prompts-table tbody tr');
    await expect(row).toHaveCount(1, { timeout: 10_000 });
    await expect(row).toContainText(`${REMOTE}:8080/tcp`);
    await expect(page.locator('#prompt-count')).toHaveText('1');
    await page.waitForTimeout(500);
    expect(output, 'the connect went through before it was answered').toBe('');
    expect(exited).toBeNull();
    await screenshot(page, 'prompts');
    await row.getByRole('button', { name: 'Allow' }).click();
    await expect(page.locator('#prompts-done')).toContainText('Allowed');
    await expect.poll(() => output, { timeout: 5000, message: 'the allowed connect got the server\'s answer' }).toContain('hi');
    await expect(row).toHaveCount(0);
  } finally {
    client.kill();
  }
});

test('an lfp-web whose lfpd is not running says so and keeps serving', async ({ page }) => {
  await open(page, 'state', LFP_WEB_DOWN_URL);
  await expect(page.locator('#banner')).toBeVisible();
  await expect(page.locator('#banner')).toContainText('lfpd is not running');
  await expect(page.locator('#events-live')).toHaveAttribute('data-live', 'false');
  await page.click('a[href="#prompts"]');
  await expect(page.locator('#banner')).toContainText('lfpd is not running');
  await page.reload();
  await expect(page.locator('#banner')).toContainText('lfpd is not running');
});
