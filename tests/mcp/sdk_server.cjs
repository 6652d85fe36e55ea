// A small MCP server written with the official SDK (@modelcontextprotocol/sdk,
// from build/npm/), for the Lua client's specs (tests/mcp/client_spec.lua).
//
//   node tests/mcp/sdk_server.cjs stdio
//   node tests/mcp/sdk_server.cjs http [--json]    # prints "listening on http://127.0.0.1:PORT/mcp"
//
// Over HTTP it is the SDK's streamable HTTP transport with sessions: answers
// are SSE streams, or JSON with --json; a session id it does not know is 404
// (as the specification says). Tools: echo, add (structured output), pixel
// (an image), fail (isError), sleep, ping_back (asks the client for a ping
// while it runs), headers (what the HTTP request carried), forget (the
// server drops the session after answering).
'use strict';
const path = require('node:path');
const http = require('node:http');
const { randomUUID } = require('node:crypto');
const { createRequire } = require('node:module');

const npm = process.env.SESH_NPM || path.join(process.env.SESH_BUILD || 'build', 'npm');
const sdk = createRequire(path.resolve(npm, 'package.json'));
const { McpServer } = sdk('@modelcontextprotocol/sdk/server/mcp.js');
const { StdioServerTransport } = sdk('@modelcontextprotocol/sdk/server/stdio.js');
const { StreamableHTTPServerTransport } = sdk('@modelcontextprotocol/sdk/server/streamableHttp.js');
const { EmptyResultSchema } = sdk('@modelcontextprotocol/sdk/types.js');
const { z } = sdk('zod');

// A 1x1 PNG.
const PIXEL = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

const transports = {};

// A tool without an input schema gets only `extra` (the SDK's convention).

function makeServer() {
  const server = new McpServer({ name: 'sdk-test-server', version: '1.0.0' });
  server.registerTool('echo', {
    description: 'Says the text back.',
    inputSchema: { text: z.string().describe('What to say.') },
  }, async ({ text }) => ({ content: [{ type: 'text', text: `echo: ${text}` }] }));
  server.registerTool('add', {
    title: 'Add', description: 'Adds two numbers.',
    inputSchema: { a: z.number(), b: z.number() },
    outputSchema: { sum: z.number() },
  }, async ({ a, b }) => ({ content: [{ type: 'text', text: JSON.stringify({ sum: a + b }) }],
                            structuredContent: { sum: a + b } }));
  server.registerTool('pixel', { description: 'Draws one pixel.' }, async () => ({
    content: [{ type: 'text', text: 'a pixel' }, { type: 'image', data: PIXEL, mimeType: 'image/png' }] }));
  server.registerTool('fail', { description: 'Fails.' }, async () => ({
    content: [{ type: 'text', text: 'it failed on purpose' }], isError: true }));
  server.registerTool('sleep', {
    description: 'Waits.', inputSchema: { ms: z.number() },
  }, async ({ ms }) => {
    await new Promise(resolve => setTimeout(resolve, ms));
    return { content: [{ type: 'text', text: `slept ${ms} ms` }] };
  });
  server.registerTool('ping_back', { description: 'Pings the client, then answers.' }, async extra => {
    await extra.sendRequest({ method: 'ping' }, EmptyResultSchema);
    return { content: [{ type: 'text', text: 'the client answered my ping' }] };
  });
  server.registerTool('headers', { description: 'The HTTP headers of this request.' }, async extra => ({
    content: [{ type: 'text', text: JSON.stringify(extra.requestInfo ? extra.requestInfo.headers : {}) }] }));
  server.registerTool('forget', { description: 'Drops this session (this answer still goes out).' }, async extra => {
    delete transports[extra.sessionId];
    return { content: [{ type: 'text', text: 'forgetting' }] };
  });
  return server;
}

function refuse(res, status, code, message) {
  res.writeHead(status, { 'Content-Type': 'application/json' })
     .end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } }));
}

async function serveHttp(json) {
  const httpServer = http.createServer(async (req, res) => {
    if (!req.url.startsWith('/mcp')) return refuse(res, 404, -32000, 'Not found');
    const sid = req.headers['mcp-session-id'];
    let transport = sid ? transports[sid] : undefined;
    if (sid && !transport) return refuse(res, 404, -32001, 'Session not found');
    if (!transport) {
      if (req.method !== 'POST') return refuse(res, 400, -32000, 'Bad Request: no session');
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(), enableJsonResponse: json,
        onsessioninitialized: id => { transports[id] = transport; },
      });
      transport.onclose = () => { if (transport.sessionId) delete transports[transport.sessionId]; };
      await makeServer().connect(transport);
    }
    await transport.handleRequest(req, res);
  });
  httpServer.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening on http://127.0.0.1:${httpServer.address().port}/mcp\n`);
  });
}

const mode = process.argv[2];
if (mode === 'stdio') {
  makeServer().connect(new StdioServerTransport());
} else if (mode === 'http') {
  serveHttp(process.argv.includes('--json'));
} else {
  process.stderr.write('usage: sdk_server.cjs stdio | http [--json]\n');
  process.exit(2);
}
