// An Express 4 app as a legacy upstream for the integration tests: it routes
// the way Express really does (case-insensitive, non-strict, raw paths) and
// answers every request with JSON saying what it routed.
//
//   node app.js            listens on 127.0.0.1, a free port
//
// The first line on stdout is `port=<n>`. Environment:
//   KEEP_ALIVE_TIMEOUT_MS  Node's server.keepAliveTimeout (default 5000; Node
//                          20 closes the socket 1 s after that)
//
// Each answer: {framework, route, method, original_method, path, url,
// headers, raw_headers, body_len, conn_id, conn_requests}. `route` is the
// name of the handler that matched; `path` is req.path as Express routes it;
// `url` is req.originalUrl; `raw_headers` are name/value pairs exactly as
// received; `conn_id` numbers the TCP connections, `conn_requests` counts the
// requests seen on this one so far.
'use strict';

const express = require('express');
const methodOverride = require('method-override');

const app = express();

let nextConn = 0;
app.use((req, _res, next) => {
  const s = req.socket;
  if (s.portcullisConnId === undefined) {
    s.portcullisConnId = ++nextConn;
    s.portcullisRequests = 0;
  }
  s.portcullisRequests += 1;
  next();
});

// The two usual ways an Express app lets a POST act as another method.
app.use(methodOverride('X-HTTP-Method-Override'));
app.use(methodOverride((req) => (req.query ? req.query._method : undefined)));

function echo(route) {
  return (req, res) => {
    let bodyLen = 0;
    req.on('data', (chunk) => {
      bodyLen += chunk.length;
    });
    req.on('end', () => {
      const raw = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        raw.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
      }
      res.json({
        framework: 'express',
        route,
        method: req.method,
        original_method: req.originalMethod,
        path: req.path,
        url: req.originalUrl,
        headers: req.headers,
        raw_headers: raw,
        body_len: bodyLen,
        conn_id: req.socket.portcullisConnId,
        conn_requests: req.socket.portcullisRequests,
      });
    });
  };
}

app.all('/admin', echo('admin'));
app.all('/admin/*', echo('admin'));
app.all('/public', echo('public'));
app.all('/public/*', echo('public'));
app.get('/api/items/:id', echo('item-get'));
app.delete('/api/items/:id', echo('item-delete'));
app.all('*', echo('fallback'));

const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`port=${server.address().port}\n`);
});
if (process.env.KEEP_ALIVE_TIMEOUT_MS) {
  server.keepAliveTimeout = Number(process.env.KEEP_ALIVE_TIMEOUT_MS);
}
// The test harness closes stdin when it is done: exit then, so no app
// outlives its test even if the harness dies.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
