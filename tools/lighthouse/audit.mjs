// Lighthouse on the pages of a running Фигачечная, for tests/browser/test_lighthouse.py.
//
//   node audit.mjs BASE_URL RESULT_ID RUNS > summary.json
//
// One Chromium (CHROME_PATH, headless) for everything, one Lighthouse process:
// `/` and `/r/{RESULT_ID}` are navigated RUNS times each (the first run with the
// accessibility, best-practices and SEO categories, the others with performance
// only: its score is the noisy one that needs a median); "a result" is a user
// flow on `/` once loaded: a timespan from typing and sending a phrase until
// the picture is shown, then a snapshot of the page with the result. Prints one JSON object:
// for each page and run the category scores and the audits the test asserts.
import * as chromeLauncher from 'chrome-launcher';
import lighthouse, {startFlow} from 'lighthouse';
import puppeteer from 'puppeteer-core';

const [base, resultId, runsText] = process.argv.slice(2);
const runs = Number(runsText || 3);
const AUDITS = [
  'uses-text-compression',
  'uses-long-cache-ttl',
  'font-display',
  'total-byte-weight',
  'render-blocking-resources',
  'largest-contentful-paint',
  'first-contentful-paint',
];
// The same flags as the browser tests: Chromium must not dial Google's services.
const CHROME_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function summary(lhr) {
  const audits = {};
  for (const id of [...AUDITS, ...failedAudits(lhr)]) {
    const audit = lhr.audits[id];
    if (audit) {
      audits[id] = {
        score: audit.score,
        scoreDisplayMode: audit.scoreDisplayMode,
        errorMessage: audit.errorMessage ?? null,
        numericValue: audit.numericValue ?? null,
        displayValue: audit.displayValue ?? null,
        title: audit.title,
        items: (audit.details?.items ?? []).slice(0, 10).map(item => ({
          url: item.url ?? item.node?.snippet ?? item.source?.url ?? null,
          wastedBytes: item.wastedBytes ?? null,
          totalBytes: item.totalBytes ?? null,
          cacheLifetimeMs: item.cacheLifetimeMs ?? null,
        })),
      };
    }
  }
  const categories = {};
  for (const [id, category] of Object.entries(lhr.categories)) categories[id] = category.score;
  return {url: lhr.finalDisplayedUrl, gatherMode: lhr.gatherMode, categories, audits,
    runWarnings: lhr.runWarnings, seconds: lhr.timing.total / 1000,
    error: lhr.runtimeError?.message ?? null};
}

// Every audit that lowers a scored category: the test prints them when a score is not 1.
function failedAudits(lhr) {
  const failed = [];
  for (const category of Object.values(lhr.categories)) {
    if (category.id === 'performance') continue;
    for (const ref of category.auditRefs) {
      const audit = lhr.audits[ref.id];
      if (ref.weight > 0 && audit.score !== null && audit.score < 1) failed.push(ref.id);
    }
  }
  return failed;
}

// A run that could not measure (a category without a score): Lighthouse's failure, not the page's.
function broken(lhr) {
  return Boolean(lhr.runtimeError) || Object.values(lhr.categories).some(c => c.score === null);
}

function whyBroken(lhr) {
  const errors = Object.values(lhr.audits).filter(a => a.errorMessage).map(a => `${a.id}: ${a.errorMessage}`);
  return [lhr.runtimeError?.message, ...errors.slice(0, 5)].filter(Boolean).join('; ');
}

function config(categories) {
  return {
    extends: 'lighthouse:default',
    // Quiet windows of half a second instead of one (the page polls every 2 s): the
    // suite's time, not the page's, is what they cost.
    settings: {
      onlyCategories: categories,
      disableFullPageScreenshot: true,
      pauseAfterFcpMs: 500,
      pauseAfterLoadMs: 500,
      networkQuietThresholdMs: 500,
      cpuQuietThresholdMs: 500,
      // Not part of any assertion or score here; bf-cache alone navigates away and back.
      skipAudits: ['bf-cache', 'screenshot-thumbnails', 'final-screenshot'],
    },
  };
}

const chrome = await chromeLauncher.launch({chromeFlags: CHROME_FLAGS, logLevel: 'error'});
const out = {pages: {}, retried: []};
try {
  for (const [name, path] of [['index', '/'], ['result-page', `/r/${resultId}`]]) {
    out.pages[name] = [];
    for (let run = 0; run < runs; run++) {
      const categories = run === 0
        ? ['performance', 'accessibility', 'best-practices', 'seo']
        : ['performance'];
      const flags = {port: chrome.port, output: 'json', logLevel: 'error'};
      let lhr = (await lighthouse(base + path, flags, config(categories))).lhr;
      if (broken(lhr)) {  // once more: on a starved machine a run may lose its trace
        out.retried.push({page: name, run, why: whyBroken(lhr)});
        lhr = (await lighthouse(base + path, flags, config(categories))).lhr;
      }
      out.pages[name].push(summary(lhr));
    }
  }
  const browser = await puppeteer.connect({browserURL: `http://127.0.0.1:${chrome.port}`});
  const page = await browser.newPage();
  const flow = await startFlow(page, {
    config: config(['performance', 'accessibility', 'best-practices', 'seo']),
    flags: {logLevel: 'error'},
  });
  await page.goto(base + '/');  // measured above: the flow starts on the loaded page
  await page.waitForFunction(() => window.htmx !== undefined);
  await flow.startTimespan();
  await page.type('#phrase', 'Велосипед');
  await page.click('button[type=submit]');
  await page.waitForSelector('#result figure.picture img', {timeout: 20000});
  await flow.endTimespan();
  await flow.snapshot();
  const flowResult = await flow.createFlowResult();
  out.pages['with-a-result'] = flowResult.steps.map(step => summary(step.lhr));
  await browser.disconnect();
} finally {
  await chrome.kill();
}
process.stdout.write(JSON.stringify(out, null, 1));
