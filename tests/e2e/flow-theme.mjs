// Generates the emulator's Flow theme (crates/emulator/assets/flow/theme.json)
// from the installed @descope/web-components-ui: its exported default light
// and dark themes (DescopeDev.js: defaultTheme, darkTheme, themeToStyle),
// turned into the `{light: {globals, components}, dark: {...}}` shape that
// `<descope-wc>` fetches as theme.json. Offline by construction: font URLs
// are dropped before conversion (fonts fall back to the system stack) and
// every remaining `url(http…)` becomes `none`, so the theme names no public
// host.
//
//   node flow-theme.mjs --check   compare with the committed file (e2e does this)
//   node flow-theme.mjs --write   regenerate the committed file
//
// Runs DescopeDev.js in headless Chromium (it needs a DOM), with every
// request outside loopback aborted.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const THEME_FILE = path.resolve(here, '../../crates/emulator/assets/flow/theme.json');

export async function generateTheme(nodeModules = path.join(here, 'node_modules')) {
  const umd = path.join(nodeModules, '@descope/web-components-ui/dist/umd');
  const server = http.createServer((req, res) => {
    const name = req.url === '/' ? null : path.basename(req.url);
    if (!name) {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><script src="/DescopeDev.js"></script>');
      return;
    }
    const file = path.join(umd, name);
    if (!fs.existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': 'text/javascript' });
    res.end(fs.readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage();
    let external = 0;
    await page.route('**/*', (route) => {
      const u = new URL(route.request().url());
      if (u.hostname === '127.0.0.1') return route.continue();
      external++;
      return route.abort();
    });
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => globalThis.DescopeDev?.themeToStyle);
    const theme = await page.evaluate(() => {
      const { themeToStyle, defaultTheme, darkTheme } = globalThis.DescopeDev;
      const offline = (t) => {
        const copy = structuredClone(t);
        for (const font of Object.values(copy.globals?.fonts || {})) delete font.url;
        return copy;
      };
      return {
        light: themeToStyle(offline(defaultTheme), 'light'),
        dark: themeToStyle(offline(darkTheme), 'dark'),
      };
    });
    if (external) throw new Error(`the theme generator tried ${external} request(s) outside loopback`);
    const text = JSON.stringify(theme).replace(/url\((?:\\")?https?:[^)]*\)/g, 'none');
    if (/https?:\/\//.test(text)) throw new Error('the generated theme still names a URL');
    return `${text}\n`;
  } finally {
    await browser.close();
    server.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = await generateTheme();
  if (process.argv.includes('--write')) {
    fs.writeFileSync(THEME_FILE, text);
    console.log(`wrote ${THEME_FILE} (${text.length} bytes)`);
  } else {
    const same = fs.existsSync(THEME_FILE) && fs.readFileSync(THEME_FILE, 'utf8') === text;
    console.log(same ? 'theme.json is up to date' : 'theme.json differs: run node tests/e2e/flow-theme.mjs --write');
    process.exitCode = same ? 0 : 1;
  }
}
