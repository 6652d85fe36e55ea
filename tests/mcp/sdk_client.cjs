// The official MCP TypeScript SDK (@modelcontextprotocol/sdk, installed into
// build/npm/ by tests/support/npm.sh) as the client of sesh-pool's MCP server.
// The SDK checks the protocol itself: the initialize exchange, every answer's
// shape, and each structuredContent against the tool's outputSchema.
//
//   node tests/mcp/sdk_client.cjs SCENARIO
//
// Environment: SESH_NPM (the folder holding node_modules), MCP_TRANSPORT
// ("stdio" or "http"), MCP_COMMAND (JSON list: the server's argv, stdio),
// MCP_URL and MCP_KEY (http). Prints one JSON object: what was observed, for
// the spec (tests/mcp/sdk_spec.lua) to assert. Exits 0 unless the scenario
// itself broke (then {"crash": message}).
'use strict';
const path = require('node:path');
const { createRequire } = require('node:module');

const npm = process.env.SESH_NPM || path.join(process.env.SESH_BUILD || 'build', 'npm');
const sdk = createRequire(path.resolve(npm, 'package.json'));
const { Client } = sdk('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = sdk('@modelcontextprotocol/sdk/client/stdio.js');
const { StreamableHTTPClientTransport } = sdk('@modelcontextprotocol/sdk/client/streamableHttp.js');

function transport(opts = {}) {
  if (process.env.MCP_TRANSPORT === 'stdio') {
    const argv = JSON.parse(process.env.MCP_COMMAND);
    return new StdioClientTransport({ command: argv[0], args: argv.slice(1), stderr: 'inherit' });
  }
  const headers = { 'x-ms-apikey': opts.key === undefined ? process.env.MCP_KEY : opts.key };
  return new StreamableHTTPClientTransport(new URL(process.env.MCP_URL),
                                           { requestInit: { headers }, sessionId: opts.sessionId });
}

async function connect(opts) {
  const client = new Client({ name: 'sesh-sdk-test', version: '1.0.0' });
  const t = transport(opts);
  await client.connect(t);
  return { client, t };
}

// What an SDK call came to: its result, or the error it threw.
async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, code: e.code, message: String(e.message || e) };
  }
}

function text(result) {
  return (result.content || []).filter(b => b.type === 'text').map(b => b.text).join('\n');
}

function images(result) {
  return (result.content || []).filter(b => b.type === 'image').map(b => {
    const bytes = Buffer.from(b.data, 'base64');
    return { mimeType: b.mimeType, size: bytes.length, signature: bytes.subarray(0, 8).toString('hex') };
  });
}

function summary(result) {
  return { isError: result.isError === true, structured: result.structuredContent, text: text(result),
           images: images(result), blocks: (result.content || []).map(b => b.type) };
}

async function call(client, name, args) {
  return summary(await client.callTool({ name, arguments: args }));
}

const PLOT = 'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()';
const SAVE_PNG = 'import matplotlib.pyplot as plt\nfig = plt.figure()\nplt.bar([1, 2], [2, 1])\n' +
                 'fig.savefig("figure.png")\nplt.close(fig)\n"saved"';

const scenarios = {
  // Everything a client does in one environment, each step recorded.
  async flow() {
    const { client, t } = await connect();
    const out = {};
    out.server = client.getServerVersion();
    out.capabilities = client.getServerCapabilities();
    out.instructions = client.getInstructions();
    out.protocolVersion = t.protocolVersion || null;
    out.sessionId = t.sessionId || null;
    const listed = await client.listTools();
    out.tools = listed.tools.map(x => ({ name: x.name, input: x.inputSchema, output: x.outputSchema,
                                         title: x.title }));
    const launched = await call(client, 'launchShell', {});
    const env = launched.structured.environmentId;
    out.launch = launched;
    out.python = await call(client, 'runPythonCodeInRemoteEnvironment', {
      environmentId: env, pythonCode: 'open("shared.txt", "w").write("from python\\n")\nanswer = 6 * 7\nanswer' });
    out.state = await call(client, 'runPythonCodeInRemoteEnvironment', { environmentId: env, pythonCode: 'answer + 1' });
    out.shell = await call(client, 'runShellCommandInRemoteEnvironment', { environmentId: env, shellCommand: 'cat shared.txt' });
    out.shellState = await call(client, 'runShellCommandInRemoteEnvironment', { environmentId: env, shellCommand: 'cd /tmp; FROM=shell' });
    out.shellFailing = await call(client, 'runShellCommandInRemoteEnvironment', {
      environmentId: env, shellCommand: 'echo $FROM; pwd; echo oops >&2; exit 3' });
    out.shellArgs = await call(client, 'runShellCommandInRemoteEnvironment', {
      environmentId: env, execCommandAndArgs: ['printf', '[%s]', 'a b', "it's", 'x\ny'] });
    out.upload = await call(client, 'uploadFile', { environmentId: env, path: 'data/in.csv', content: 'a,b\n1,2\n3,4\n' });
    out.uploadBase64 = await call(client, 'uploadFile', {
      environmentId: env, path: 'bytes.bin', content: Buffer.from([0, 1, 2, 255]).toString('base64'), encoding: 'base64' });
    out.pandas = await call(client, 'runPythonCodeInRemoteEnvironment', {
      environmentId: env, pythonCode: 'import pandas as pd\nint(pd.read_csv("data/in.csv")["b"].sum())' });
    out.readBytes = await call(client, 'runPythonCodeInRemoteEnvironment', {
      environmentId: env, pythonCode: 'list(open("bytes.bin", "rb").read())' });
    out.downloadText = await call(client, 'downloadFile', { environmentId: env, path: 'shared.txt' });
    out.downloadBinary = await call(client, 'downloadFile', { environmentId: env, path: 'bytes.bin' });
    out.plot = await call(client, 'runPythonCodeInRemoteEnvironment', { environmentId: env, pythonCode: PLOT });
    out.savePng = await call(client, 'runPythonCodeInRemoteEnvironment', { environmentId: env, pythonCode: SAVE_PNG });
    out.downloadPng = await call(client, 'downloadFile', { environmentId: env, path: 'figure.png' });
    out.missing = await call(client, 'downloadFile', { environmentId: env, path: 'nope.txt' });
    out.failing = await call(client, 'runPythonCodeInRemoteEnvironment', { environmentId: env, pythonCode: 'x = 1\n1 / 0' });
    out.afterFailure = await call(client, 'runPythonCodeInRemoteEnvironment', { environmentId: env, pythonCode: 'x' });
    out.list = await call(client, 'listFiles', { environmentId: env, recursive: true });
    out.unknownTool = await attempt(() => client.callTool({ name: 'noSuchTool', arguments: {} }));
    out.badArguments = await attempt(() => client.callTool({
      name: 'runPythonCodeInRemoteEnvironment', arguments: { environmentId: env, pythonCode: 42 } }));
    out.unknownEnvironment = await call(client, 'runPythonCodeInRemoteEnvironment', {
      environmentId: '00000000-0000-4000-8000-000000000000', pythonCode: '1' });
    out.close = await call(client, 'closeEnvironment', { environmentId: env });
    out.afterClose = await call(client, 'listFiles', { environmentId: env });
    await client.close();
    return out;
  },

  // HTTP: the key is checked before anything else.
  async wrongKey() {
    const r = await attempt(() => connect({ key: 'not-the-key' }));
    return { connected: r.ok, code: r.code, message: r.message };
  },

  // HTTP: a session id the server never gave is 404 (the spec checks one
  // that ended with raw requests: the SDK forgets it after its DELETE).
  async unknownSession() {
    const bogus = await attempt(async () => {
      const t = transport({ sessionId: '0123456789abcdef0123456789abcdef' });
      await t.start();
      try {
        return await new Promise((resolve, reject) => {
          t.onmessage = resolve;
          t.onerror = reject;
          t.send({ jsonrpc: '2.0', id: 1, method: 'tools/list' }).catch(reject);
        });
      } finally {
        await t.close();
      }
    });
    return { bogus };
  },

  // An environment, then the end of the MCP session (DELETE over HTTP; on
  // stdio the end of stdin). The spec checks the environment is gone.
  async endSession() {
    const { client, t } = await connect();
    const env = (await call(client, 'launchShell', {})).structured.environmentId;
    const ran = await call(client, 'runPythonCodeInRemoteEnvironment', { environmentId: env, pythonCode: 'import os; os.getpid()' });
    const out = { environmentId: env, ran, sessionId: t.sessionId || null };
    if (process.env.MCP_TRANSPORT === 'stdio') {
      const child = t._process;                 // the SDK keeps its child here
      out.pid = child.pid;
      const exited = new Promise(resolve => child.once('exit', (code, signal) => resolve({ code, signal })));
      const started = Date.now();
      await client.close();                     // ends stdin, SIGTERM after 2 s if still running
      out.exit = await exited;
      out.exitMs = Date.now() - started;
    } else {
      out.terminated = await attempt(() => t.terminateSession());
      await client.close();
    }
    return out;
  },
};

(async () => {
  const name = process.argv[2];
  if (!scenarios[name]) throw new Error(`no scenario ${name}`);
  const out = await scenarios[name]();
  process.stdout.write(JSON.stringify(out) + '\n');
})().catch(e => {
  process.stdout.write(JSON.stringify({ crash: String(e && e.stack || e) }) + '\n');
  process.exitCode = 1;
});
