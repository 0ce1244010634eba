// MQTT.js in headless Chromium against a running Tributary, over WebSocket:
//   node browser_test.mjs TCP_PORT WS_PORT CHROMIUM_PATH
//
// A small page served from 127.0.0.1 loads MQTT.js's browser bundle, connects to
// ws://127.0.0.1:WS_PORT/mqtt, subscribes, and reports what it receives. This script, as a
// TCP client (MQTT.js under Node), publishes to the browser and receives what the browser
// publishes. Every wait is bounded. Prints one line per check and "N passed, N failed".

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.cwd(), 'package.json'));
const mqtt = require('mqtt');
const { chromium } = require('playwright-core');

const [tcpPort, wsPort, chromiumPath] = process.argv.slice(2);
const WAIT = 10_000;
// The browser bundle, read from the install (the package's exports map hides dist/).
const bundle = fs.readFileSync(path.join(process.cwd(), 'node_modules/mqtt/dist/mqtt.min.js'));

const page_html = `<!doctype html><meta charset="utf-8"><title>tributary interop</title>
<script src="/mqtt.min.js"></script>
<script>
  window.received = [];
  window.start = (url, version) => new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { protocolVersion: version, clientId: 'browser-' + version, reconnectPeriod: 0 });
    window.client = client;
    client.on('message', (topic, payload) => window.received.push({ topic, payload: payload.toString() }));
    client.on('error', (e) => reject(String(e)));
    client.on('connect', () => client.subscribe('interop/browser/in/' + version, { qos: 1 }, (err) => err ? reject(String(err)) : resolve('ok')));
  });
  window.send = (topic, payload) => new Promise((resolve, reject) =>
    window.client.publish(topic, payload, { qos: 1 }, (err) => err ? reject(String(err)) : resolve('ok')));
</script>`;

const server = http.createServer((req, res) => {
  if (req.url === '/mqtt.min.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' });
    res.end(bundle);
  } else {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page_html);
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push(true);
    console.log(`ok    browser ${name}`);
  } catch (error) {
    results.push(false);
    console.log(`FAIL  browser ${name}: ${error}`);
  }
}

function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), WAIT); }),
  ]).finally(() => clearTimeout(timer));
}

const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--headless', '--no-sandbox'] });
try {
  for (const version of [4, 5]) {
    await check(`MQTT.js v${version === 4 ? '3.1.1' : '5.0'} over ws:// both ways`, async () => {
      const page = await browser.newPage();
      await page.goto(pageUrl);
      await withTimeout(page.evaluate(([url, v]) => window.start(url, v), [`ws://127.0.0.1:${wsPort}/mqtt`, version]), 'browser connect');

      const tcp = await withTimeout(mqtt.connectAsync(`mqtt://127.0.0.1:${tcpPort}`, { protocolVersion: version, reconnectPeriod: 0 }), 'tcp connect');
      const fromBrowser = new Promise((resolve) => tcp.on('message', (topic, payload) => resolve({ topic, payload: payload.toString() })));
      await tcp.subscribeAsync(`interop/browser/out/${version}`, { qos: 1 });

      // TCP -> browser.
      await tcp.publishAsync(`interop/browser/in/${version}`, `to-browser-${version}`, { qos: 1 });
      const got = await withTimeout((async () => {
        for (;;) {
          const received = await page.evaluate(() => window.received);
          if (received.length) return received[0];
          await new Promise((r) => setTimeout(r, 50));
        }
      })(), 'browser receive');
      if (got.topic !== `interop/browser/in/${version}` || got.payload !== `to-browser-${version}`) {
        throw new Error(`browser got ${JSON.stringify(got)}`);
      }

      // Browser -> TCP.
      await withTimeout(page.evaluate(([t, p]) => window.send(t, p), [`interop/browser/out/${version}`, `from-browser-${version}`]), 'browser publish');
      const back = await withTimeout(fromBrowser, 'tcp receive');
      if (back.payload !== `from-browser-${version}`) throw new Error(`tcp got ${JSON.stringify(back)}`);

      await tcp.endAsync();
      await page.close();
    });
  }
} finally {
  await browser.close();
  server.close();
}

const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
