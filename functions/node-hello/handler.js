// The example Node.js Kiln function: answers every invocation with a JSON greeting that
// describes the request, and echoes the `x-echo` header if one was sent. On the path
// `/stream` it answers a streamed `text/event-stream` body instead: three server-sent events
// `data: 1`, `data: 2`, `data: 3`, 200 ms apart.
'use strict';

const { setTimeout: delay } = require('node:timers/promises');

const kiln = require('kiln-sdk');

/** The pause between two events of the `/stream` answer. */
const EVENT_INTERVAL_MS = 200;

/**
 * On `/stream`, the streamed events (see `events`). Otherwise `200` JSON with the greeting,
 * method, path, query and body; echoes `x-echo`.
 * @param {kiln.Invocation} request
 */
async function handle(request) {
  if (request.path === '/stream') {
    return kiln.stream(events(), { contentType: 'text/event-stream' });
  }
  const echo = request.headers.get('x-echo');
  return kiln.json(
    {
      greeting: 'hello from node',
      method: request.method,
      path: request.path,
      query: request.query,
      body: request.text(),
    },
    { headers: echo === null ? {} : { 'x-echo': echo } },
  );
}

/** Three server-sent events, `data: 1` to `data: 3`, each sent as it is produced. */
async function* events() {
  for (let n = 1; n <= 3; n++) {
    if (n > 1) {
      await delay(EVENT_INTERVAL_MS);
    }
    yield `data: ${n}\n\n`;
  }
}

module.exports = { events, handle };

// Serve when started as the container's command; tests require the module instead.
if (require.main === module) {
  kiln.serve(handle);
}
