// Reads what an analyst sees in IRIS's web UI, for velohunt's UI test
// (cmd/velohunt/realui_test.go): the text of the case's timeline events,
// the values shown in the IOC dialog's tabs, and the text of the assets
// table; and counts JavaScript dialogs (alert, confirm, prompt), which must
// stay at 0. Runs headless Chromium through playwright-core.
//
// env: IRIS_URL, IRIS_USER, IRIS_PASSWORD, CASE_ID, IOC_ID, CHROMIUM
// prints one JSON object: {events: [text], ioc: [values], assets: text, dialogs: n, images: [src]}
import { chromium } from 'playwright-core';

const env = process.env;
const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = { events: [], ioc: [], assets: '', dialogs: 0, images: [] };
try {
  const page = await browser.newPage();
  page.on('dialog', (d) => { out.dialogs++; d.dismiss().catch(() => {}); });
  await page.goto(env.IRIS_URL + '/login');
  await page.fill('#username', env.IRIS_USER);
  await page.fill('#password', env.IRIS_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);

  // Timeline: each event's panel as displayed (title and rendered content).
  await page.goto(`${env.IRIS_URL}/case/timeline?cid=${env.CASE_ID}`);
  await page.waitForSelector('.timeline-panel', { timeout: 30000 });
  await page.waitForTimeout(1500);
  // Long contents are folded behind "See more": unfold them, as an analyst would.
  for (const more of await page.getByText('See more').all()) {
    await more.click().catch(() => {});
  }
  await page.waitForTimeout(500);
  out.events = await page.$$eval('.timeline-panel', (els) => els.map((e) => e.innerText));
  out.images = await page.$$eval('.timeline-panel img', (els) => els.map((e) => e.getAttribute('src') || ''));

  // The IOC dialog: every input and textarea value of its tabs.
  await page.goto(`${env.IRIS_URL}/case/ioc?cid=${env.CASE_ID}`);
  await page.waitForSelector('#ioc_table', { timeout: 30000 });
  await page.waitForTimeout(1500);
  await page.evaluate((id) => edit_ioc(Number(id)), env.IOC_ID);
  await page.waitForSelector('.modal.show input', { state: 'attached', timeout: 30000 });
  await page.waitForTimeout(1000);
  out.ioc = await page.$$eval('.modal.show input, .modal.show textarea', (els) => els.map((e) => e.value));
  await page.screenshot({ path: env.SCREENSHOT_DIR ? env.SCREENSHOT_DIR + '/ioc.png' : '/dev/null' }).catch(() => {});

  // Assets table.
  await page.goto(`${env.IRIS_URL}/case/assets?cid=${env.CASE_ID}`);
  await page.waitForSelector('#assets_table', { timeout: 30000 });
  await page.waitForTimeout(1500);
  out.assets = await page.$eval('#assets_table', (e) => e.innerText);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
