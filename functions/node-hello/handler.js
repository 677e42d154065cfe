// The example Node.js Kiln function: answers every invocation with a JSON greeting that
// describes the request, and echoes the `x-echo` header if one was sent.
'use strict';

const kiln = require('kiln-sdk');

/**
 * `200` JSON with the greeting, method, path, query and body; echoes `x-echo`.
 * @param {kiln.Invocation} request
 */
async function handle(request) {
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

module.exports = { handle };

// Serve when started as the container's command; tests require the module instead.
if (require.main === module) {
  kiln.serve(handle);
}
