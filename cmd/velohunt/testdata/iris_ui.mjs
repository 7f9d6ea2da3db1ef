// Reads what an analyst sees in IRIS's web UI, for velohunt's UI tests
// (cmd/velohunt/realui_test.go): the text of the case's timeline events,
// the values shown in the IOC dialog's tabs, the text of the assets table
// and, with EVIDENCE=1, the evidence list and the first evidence's dialog
// (its fields and its description as IRIS renders it, Markdown to HTML);
// counts JavaScript dialogs (alert, confirm, prompt), which must stay at 0,
// and lists every <img> of those parts of the pages. Runs headless
// Chromium through playwright-core.
//
// With SCREENSHOT_DIR set it also saves, in that folder, timeline.png,
// ioc-tab.png (the IOC dialog on the tab TAB_NAME), assets.png and, with
// EVIDENCE=1, evidence.png and evidence-dialog.png.
//
// env: IRIS_URL, IRIS_USER, IRIS_PASSWORD, CASE_ID, IOC_ID, CHROMIUM,
//      EVIDENCE, TAB_NAME, SCREENSHOT_DIR
// prints one JSON object: {events: [text], ioc: [values], assets: text,
//   evidences: text, evidence: {inputs: {id: value}, preview: text,
//   previewTags: [tag]}, dialogs: n, images: [{where, src, html}]}
import { chromium } from 'playwright-core';

const env = process.env;
const shots = env.SCREENSHOT_DIR || '';
const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = { events: [], ioc: [], assets: '', evidences: '', evidence: null, dialogs: 0, images: [] };

// images lists the <img> elements under selector, naming where they are.
async function images(page, where, selector) {
  const found = await page.$$eval(selector + ' img', (els) =>
    els.map((e) => ({ src: e.getAttribute('src') || '', html: e.outerHTML.slice(0, 200) })));
  for (const f of found) out.images.push({ where, ...f });
}

// shot saves the part of the page the selector covers, at most maxHeight
// pixels of it, as name in SCREENSHOT_DIR.
async function shot(page, selector, name, maxHeight = 900) {
  if (!shots) return;
  // From the top of the page, so that sticky bars stay where they belong;
  // the clip is in page coordinates (fullPage).
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(300);
  const box = await page.locator(selector).first().boundingBox();
  if (!box) throw new Error(`screenshot ${name}: ${selector} is not displayed`);
  const pad = 8;
  const x = Math.max(0, box.x - pad), y = Math.max(0, box.y - pad);
  await page.screenshot({
    path: `${shots}/${name}`, fullPage: true,
    clip: { x, y, width: Math.min(box.width + 2 * pad, 1400 - x), height: Math.min(box.height + 2 * pad, maxHeight) },
  });
}

try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('dialog', (d) => { out.dialogs++; d.dismiss().catch(() => {}); });
  await page.goto(env.IRIS_URL + '/login');
  await page.fill('#username', env.IRIS_USER);
  await page.fill('#password', env.IRIS_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);

  // Timeline: each event's panel as displayed (title and rendered content).
  await page.goto(`${env.IRIS_URL}/case/timeline?cid=${env.CASE_ID}`);
  await page.waitForSelector('.timeline-panel', { timeout: 30000 });
  await page.waitForTimeout(1500);
  // IRIS scrolls its panel, not the page: a tall window shows the hit
  // events and the "collected" ones together.
  if (shots) {
    await page.setViewportSize({ width: 1400, height: 2000 });
    await page.waitForTimeout(800);
    await shot(page, '#timeline_list', 'timeline.png', 1900);
    await page.setViewportSize({ width: 1400, height: 900 });
  }
  // Long contents are folded behind "See more": unfold them, as an analyst would.
  for (const more of await page.getByText('See more').all()) {
    await more.click().catch(() => {});
  }
  await page.waitForTimeout(500);
  out.events = await page.$$eval('.timeline-panel', (els) => els.map((e) => e.innerText));
  await images(page, 'timeline', '.timeline-panel');

  // The IOC dialog: every input and textarea value of its tabs.
  await page.goto(`${env.IRIS_URL}/case/ioc?cid=${env.CASE_ID}`);
  await page.waitForSelector('#ioc_table', { timeout: 30000 });
  await page.waitForTimeout(1500);
  await page.evaluate((id) => edit_ioc(Number(id)), env.IOC_ID);
  await page.waitForSelector('.modal.show input', { state: 'attached', timeout: 30000 });
  await page.waitForTimeout(1000);
  out.ioc = await page.$$eval('.modal.show input, .modal.show textarea', (els) => els.map((e) => e.value));
  await images(page, 'IOC dialog', '.modal.show');
  if (shots && env.TAB_NAME) {
    await page.locator('.modal.show .nav-link', { hasText: env.TAB_NAME }).first().click();
    // The screenshot shows IRIS's Info tab and velohunt's: the tabs other
    // tests of a shared IRIS add to every IOC are hidden from it.
    await page.evaluate((tab) => {
      for (const a of document.querySelectorAll('.modal.show .nav-link')) {
        const name = a.textContent.trim();
        if (name !== 'Info' && name !== tab) a.closest('.nav-item, li')?.style.setProperty('display', 'none');
      }
    }, env.TAB_NAME);
    await page.waitForTimeout(800);
    await shot(page, '.modal.show .modal-content', 'ioc-tab.png', 900);
  }

  // Assets table.
  await page.goto(`${env.IRIS_URL}/case/assets?cid=${env.CASE_ID}`);
  await page.waitForSelector('#assets_table', { timeout: 30000 });
  await page.waitForTimeout(1500);
  out.assets = await page.$eval('#assets_table', (e) => e.innerText);
  await images(page, 'assets table', '#assets_table');
  await shot(page, '#assets_table_wrapper, #assets_table', 'assets.png', 700);

  if (env.EVIDENCE === '1') {
    // Evidence list, then the first evidence's dialog, opened by its link
    // in the list as an analyst would.
    await page.goto(`${env.IRIS_URL}/case/evidences?cid=${env.CASE_ID}`);
    await page.waitForSelector('#rfiles_table .evidence_details_link', { timeout: 30000 });
    await page.waitForTimeout(1500);
    out.evidences = await page.$eval('#rfiles_table', (e) => e.innerText);
    await images(page, 'evidence list', '#rfiles_table');
    await shot(page, '#card_main_load', 'evidence.png', 700);
    await page.locator('#rfiles_table .evidence_details_link').first().click();
    await page.waitForSelector('#modal_add_rfiles.show #filename', { timeout: 30000 });
    await page.waitForTimeout(1500);
    // The description's preview: IRIS renders the Markdown to HTML there.
    if (!(await page.isVisible('#container_evidence_description'))) {
      await page.evaluate(() => preview_evidence_description());
      await page.waitForTimeout(500);
    }
    out.evidence = await page.evaluate(() => {
      const m = document.querySelector('#modal_add_rfiles');
      const inputs = {};
      for (const e of m.querySelectorAll('input[id], textarea[id]')) inputs[e.id] = e.value;
      const p = document.querySelector('#target_evidence_desc');
      return {
        inputs,
        preview: p.innerText,
        previewTags: [...new Set([...p.querySelectorAll('*')].map((e) => e.tagName.toLowerCase()))],
        previewShown: p.offsetParent !== null,
      };
    });
    await images(page, 'evidence dialog', '#modal_add_rfiles');
    if (shots) {
      // Tall enough for the whole dialog.
      await page.setViewportSize({ width: 1400, height: 1500 });
      await page.waitForTimeout(500);
      await shot(page, '#modal_add_rfiles .modal-content', 'evidence-dialog.png', 1500);
    }
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
