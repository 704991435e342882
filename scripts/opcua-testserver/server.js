#!/usr/bin/env node
// A node-opcua server for edgeagent's OPC UA driver tests (started by
// internal/testutil/nodeopcua.go). Unlike gopcua's own server it enforces
// what the tests need: user passwords, certificate trust, operation limits,
// and node-opcua's real publishing engine (queue sizes, deadband filters,
// keep-alives, Republish, TransferSubscriptions).
//
// Usage: node server.js [flags]   or   node server.js '{"port":0,...}'
// (see usage() below). When it listens it prints one line on stdout:
//   READY opc.tcp://127.0.0.1:PORT <namespaceUri> <nsIndex>
// then reads commands from stdin, one per line, each answered with one
// line on stdout ("ok ..." or "error ..."):
//   set <name> <value>          set a variable's value (status Good)
//   bump                        increment every counter by one
//   status <name> <StatusCode>  keep the value, change its status code
//   get <name>                  answers "ok <value> <StatusCodeName>"
//   sessions                    answers "ok <open> <created> <timedout>": the
//                               sessions open now, created since the start,
//                               and closed by the server for their timeout
// It exits when stdin closes, so a test that dies does not leave it behind.
"use strict";

// node-opcua logs warnings with console.log; stdout is the protocol with
// the test, so every log goes to stderr. Done before node-opcua is loaded.
const util = require("node:util");
for (const k of ["log", "info", "warn", "debug"]) {
  console[k] = (...a) => process.stderr.write(util.format(...a) + "\n");
}

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");

const HOST = "127.0.0.1";

const OPERATION_LIMITS = [
  "maxNodesPerRead",
  "maxNodesPerWrite",
  "maxNodesPerBrowse",
  "maxNodesPerRegisterNodes",
  "maxMonitoredItemsPerCall",
  "maxNodesPerTranslateBrowsePathsToNodeIds",
  "maxNodesPerMethodCall",
  "maxNodesPerHistoryReadData",
  "maxNodesPerHistoryReadEvents",
];
const CAPABILITIES = [
  "maxMonitoredItemsPerSubscription",
  "maxMonitoredItems",
  "maxSubscriptionsPerSession",
  "maxSubscriptions",
  "maxSessions",
  "maxMonitoredItemsQueueSize",
  "maxBrowseContinuationPoints",
  "minSupportedSampleRate",
];
// node-opcua caps monitored-item queues at 5000 whatever it advertises
// (node-opcua-server monitored_item.js maxQueueSize).
const NODE_OPCUA_MAX_QUEUE_SIZE = 5000;

function wrap(words) {
  const lines = [];
  let line = "";
  for (const w of words) {
    if (line && line.length + w.length + 2 > 50) {
      lines.push(line + ",");
      line = "";
    }
    line = line ? `${line}, ${w}` : w;
  }
  lines.push(line);
  return lines.join("\n                            ");
}

function usage() {
  return `usage: node server.js [flags] | node server.js '<json>'
  --port N                  TCP port; 0 (default) picks a free one
  --pki DIR                 PKI directory (server certificate, trusted and
                            rejected client certificates); created and reused.
                            Default: a temporary directory removed at exit
  --user NAME:PASSWORD      a user (repeatable); with users, anonymous is refused
  --reject-unknown-certs    refuse client certificates not in DIR/trusted
                            (default: trust them automatically)
  --trust FILE              trust this client certificate (PEM or DER; repeatable)
  --trust-user-cert FILE    trust this X509 user certificate (PEM or DER;
                            repeatable). With any, or --reject-unknown-certs,
                            a user certificate not in DIR/user/trusted is
                            refused (BadIdentityTokenRejected); the token's
                            signature is verified either way. Default: user
                            certificates are trusted on first use
  --limit NAME=VALUE        an operation limit or capability (repeatable),
                            advertised under Server/ServerCapabilities and
                            enforced (BadTooManyOperations, BadTooManyMonitoredItems,
                            BadTooManySubscriptions, BadTooManySessions, a revised
                            queue size, ...):
                            ${wrap(OPERATION_LIMITS.concat(CAPABILITIES))}
                            (minSupportedSampleRate in ms; 0 makes a monitored item
                            that asks for sampling interval 0 report every change
                            instead of at most one per 50 ms)
  --strict-anonymous-transfer  refuse TransferSubscriptions of anonymous
                            sessions over security None (OPC UA Part 4 5.14.7;
                            node-opcua allows it by default)
  --counters N              counters Counter0000.. (UInt32), default 10
  --tick MS                 increment every counter every MS milliseconds
                            (default 0: only on "bump")
  --application-uri URI     server application URI, which is also the URI of
                            its namespace (default urn:edgeagent:opcua-testserver)
  --security-modes LIST     comma-separated, of None,Sign,SignAndEncrypt (default all)
  --security-policies LIST  comma-separated, of None,Basic256Sha256 (default both)
The JSON form takes the same settings as keys: port, pki, users (object
{name: password} or list of "name:password"), rejectUnknownCerts, trust
(list), trustUserCerts (list), limits (object), counters, tickMs, applicationUri, securityModes
(list), securityPolicies (list), strictAnonymousTransfer.`;
}

function fail(msg) {
  process.stderr.write(`opcua-testserver: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const cfg = {
    port: 0,
    pki: "",
    users: {},
    rejectUnknownCerts: false,
    trust: [],
    trustUserCerts: [],
    limits: {},
    counters: 10,
    tickMs: 0,
    applicationUri: "urn:edgeagent:opcua-testserver",
    securityModes: ["None", "Sign", "SignAndEncrypt"],
    securityPolicies: ["None", "Basic256Sha256"],
    strictAnonymousTransfer: false,
  };
  const addUser = (s) => {
    const i = String(s).indexOf(":");
    if (i <= 0) fail(`user ${JSON.stringify(s)}: want NAME:PASSWORD`);
    cfg.users[s.slice(0, i)] = s.slice(i + 1);
  };
  const int = (name, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) fail(`${name}: want a non-negative integer, got ${JSON.stringify(v)}`);
    return n;
  };
  const list = (v) => (Array.isArray(v) ? v : String(v).split(",")).map((s) => String(s).trim()).filter(Boolean);

  if (argv.length === 1 && argv[0].trim().startsWith("{")) {
    let j;
    try {
      j = JSON.parse(argv[0]);
    } catch (err) {
      fail(`JSON argument: ${err.message}`);
    }
    for (const [k, v] of Object.entries(j)) {
      switch (k) {
        case "port": cfg.port = int(k, v); break;
        case "pki": cfg.pki = String(v); break;
        case "users":
          if (Array.isArray(v)) v.forEach(addUser);
          else Object.entries(v || {}).forEach(([u, p]) => { cfg.users[u] = String(p); });
          break;
        case "rejectUnknownCerts": cfg.rejectUnknownCerts = !!v; break;
        case "trust": cfg.trust = list(v); break;
        case "trustUserCerts": cfg.trustUserCerts = list(v); break;
        case "limits": for (const [n, x] of Object.entries(v || {})) cfg.limits[n] = int(n, x); break;
        case "counters": cfg.counters = int(k, v); break;
        case "tickMs": cfg.tickMs = int(k, v); break;
        case "applicationUri": cfg.applicationUri = String(v); break;
        case "securityModes": cfg.securityModes = list(v); break;
        case "securityPolicies": cfg.securityPolicies = list(v); break;
        case "strictAnonymousTransfer": cfg.strictAnonymousTransfer = !!v; break;
        default: fail(`unknown setting ${JSON.stringify(k)}\n${usage()}`);
      }
    }
  } else {
    for (let i = 0; i < argv.length; i++) {
      let a = argv[i];
      let v;
      const eq = a.indexOf("=");
      if (a.startsWith("--") && eq > 0) {
        v = a.slice(eq + 1);
        a = a.slice(0, eq);
      }
      const val = () => {
        if (v !== undefined) return v;
        if (i + 1 >= argv.length) fail(`${a} needs a value`);
        return argv[++i];
      };
      switch (a) {
        case "--port": cfg.port = int(a, val()); break;
        case "--pki": cfg.pki = val(); break;
        case "--user": addUser(val()); break;
        case "--reject-unknown-certs": cfg.rejectUnknownCerts = v === undefined ? true : v !== "false"; break;
        case "--trust": cfg.trust.push(val()); break;
        case "--trust-user-cert": cfg.trustUserCerts.push(val()); break;
        case "--limit": {
          const s = val();
          const k = s.indexOf("=");
          if (k <= 0) fail(`--limit ${s}: want NAME=VALUE`);
          cfg.limits[s.slice(0, k)] = int(s.slice(0, k), s.slice(k + 1));
          break;
        }
        case "--counters": cfg.counters = int(a, val()); break;
        case "--tick": cfg.tickMs = int(a, val()); break;
        case "--application-uri": cfg.applicationUri = val(); break;
        case "--security-modes": cfg.securityModes = list(val()); break;
        case "--security-policies": cfg.securityPolicies = list(val()); break;
        case "--strict-anonymous-transfer": cfg.strictAnonymousTransfer = v === undefined ? true : v !== "false"; break;
        case "-h":
        case "--help":
          process.stdout.write(usage() + "\n");
          process.exit(0);
          break;
        default: fail(`unknown argument ${JSON.stringify(a)}\n${usage()}`);
      }
    }
  }
  for (const k of Object.keys(cfg.limits)) {
    if (!OPERATION_LIMITS.includes(k) && !CAPABILITIES.includes(k)) fail(`unknown limit ${JSON.stringify(k)}\n${usage()}`);
  }
  if ((cfg.limits.maxMonitoredItemsQueueSize ?? 0) > NODE_OPCUA_MAX_QUEUE_SIZE) {
    fail(`maxMonitoredItemsQueueSize: node-opcua caps queues at ${NODE_OPCUA_MAX_QUEUE_SIZE}`);
  }
  if (cfg.counters > 10000) fail("at most 10000 counters (Counter0000..Counter9999)");
  return cfg;
}

// PEM or DER certificate file → DER.
function readCertificateDER(file) {
  const buf = fs.readFileSync(file);
  const text = buf.toString("latin1");
  const m = text.match(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/);
  return m ? Buffer.from(m[1].replace(/\s+/g, ""), "base64") : buf;
}

async function main() {
  const cfg = parseArgs(process.argv.slice(2));
  const {
    OPCUAServer,
    OPCUACertificateManager,
    SecurityPolicy,
    MessageSecurityMode,
    DataType,
    Variant,
    StatusCodes,
    VariableIds,
    MonitoredItem,
    nodesets,
  } = require("node-opcua");

  let pki = cfg.pki;
  if (!pki) {
    const tmpPKI = (pki = fs.mkdtempSync(path.join(os.tmpdir(), "opcua-testserver-pki-")));
    process.on("exit", () => {
      try { fs.rmSync(tmpPKI, { recursive: true, force: true }); } catch { /* exiting anyway */ }
    });
  }
  fs.mkdirSync(pki, { recursive: true });

  const modes = cfg.securityModes.map((m) => {
    const v = MessageSecurityMode[m];
    if (v === undefined || m === "Invalid") fail(`unknown security mode ${JSON.stringify(m)}`);
    return v;
  });
  const policies = cfg.securityPolicies.map((p) => {
    if (!["None", "Basic256Sha256"].includes(p)) fail(`unsupported security policy ${JSON.stringify(p)} (None, Basic256Sha256)`);
    return SecurityPolicy[p];
  });

  const accept = !cfg.rejectUnknownCerts;
  const serverCertificateManager = new OPCUACertificateManager({
    rootFolder: path.join(pki, "server"),
    automaticallyAcceptUnknownCertificate: accept,
  });
  // X509 user identities: node-opcua checks the token's signature (made
  // with the user's key over the server certificate and nonce) and then
  // the certificate against this manager (trust, validity, revocation),
  // answering BadUserSignatureInvalid or BadIdentityTokenRejected.
  const userCertificateManager = new OPCUACertificateManager({
    rootFolder: path.join(pki, "user"),
    automaticallyAcceptUnknownCertificate: accept && cfg.trustUserCerts.length === 0,
  });
  await serverCertificateManager.initialize();
  for (const f of cfg.trust) {
    await serverCertificateManager.trustCertificate(readCertificateDER(f));
  }
  await userCertificateManager.initialize();
  for (const f of cfg.trustUserCerts) {
    await userCertificateManager.trustCertificate(readCertificateDER(f));
  }

  const operationLimits = {};
  const capabilities = {};
  for (const [k, v] of Object.entries(cfg.limits)) {
    if (OPERATION_LIMITS.includes(k)) operationLimits[k] = v;
    else capabilities[k] = v;
  }

  // Monitored-item queue sizes: node-opcua advertises
  // MaxMonitoredItemsQueueSize (60000 by default) but revises a requested
  // queue size only down to its own 5000. Revise it down to what is
  // advertised, and advertise at most what node-opcua can hold.
  capabilities.maxMonitoredItemsQueueSize = capabilities.maxMonitoredItemsQueueSize || NODE_OPCUA_MAX_QUEUE_SIZE;
  const maxQueueSize = capabilities.maxMonitoredItemsQueueSize;
  const setParameters = MonitoredItem.prototype._set_parameters;
  if (typeof setParameters !== "function") {
    fail("this node-opcua has no MonitoredItem.prototype._set_parameters: update the queue size cap in server.js");
  }
  MonitoredItem.prototype._set_parameters = function (parameters) {
    setParameters.call(this, parameters);
    if (this.queueSize > maxQueueSize) this.queueSize = maxQueueSize;
  };
  // MinSupportedSampleRate: node-opcua revises a requested sampling
  // interval of 0 to it (50 ms by default) and samples no faster than
  // MonitoredItem.minimumSamplingInterval (50 ms), but advertises at least
  // 100. When configured, the advertised value and the revision of 0
  // follow it, and a positive value is also the fastest sampling.
  const minSampleRate = capabilities.minSupportedSampleRate;
  if (minSampleRate !== undefined && minSampleRate > 0) {
    MonitoredItem.minimumSamplingInterval = minSampleRate;
  }

  const users = cfg.users;
  const haveUsers = Object.keys(users).length > 0;
  const server = new OPCUAServer({
    port: cfg.port,
    host: HOST,
    hostname: HOST,
    nodeset_filename: [nodesets.standard],
    serverInfo: {
      applicationUri: cfg.applicationUri,
      productUri: "urn:edgeagent:opcua-testserver",
      applicationName: { text: "edgeagent opcua-testserver", locale: "en" },
    },
    buildInfo: { productName: "edgeagent opcua-testserver", manufacturerName: "edgeagent" },
    serverCertificateManager,
    userCertificateManager,
    securityModes: modes,
    securityPolicies: policies,
    allowAnonymous: !haveUsers,
    userManager: {
      isValidUser: (username, password) =>
        Object.prototype.hasOwnProperty.call(users, username) && users[username] === password,
    },
    serverCapabilities: { ...capabilities, operationLimits },
    allowAnonymousSubscriptionTransferOnUnsecuredChannel: !cfg.strictAnonymousTransfer,
    disableDiscovery: true,
  });

  await server.initialize();

  const addressSpace = server.engine.addressSpace;
  if (minSampleRate !== undefined) {
    addressSpace.findNode(VariableIds.Server_ServerCapabilities_MinSupportedSampleRate).bindVariable(
      { get: () => new Variant({ dataType: DataType.Double, value: minSampleRate }) },
      true,
    );
  }
  const ns = addressSpace.getOwnNamespace();
  const folder = ns.addFolder(addressSpace.rootFolder.objects, { browseName: "TestServer", nodeId: "s=TestServer" });

  const vars = new Map(); // name → {node, dataType}
  const add = (name, dataType, value, writable) => {
    const node = ns.addVariable({
      componentOf: folder,
      browseName: name,
      nodeId: `s=${name}`,
      dataType,
      accessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      userAccessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      minimumSamplingInterval: 0,
      value: { dataType: DataType[dataType], value },
    });
    vars.set(name, { node, dataType });
    return node;
  };
  const counters = [];
  for (let i = 0; i < cfg.counters; i++) {
    counters.push(add(`Counter${String(i).padStart(4, "0")}`, "UInt32", 0, false));
  }
  // An AnalogItem, so that percent deadband filters (which need EURange)
  // work on it as well as absolute ones.
  const temperature = ns.addAnalogDataItem({
    componentOf: folder,
    browseName: "Temperature",
    nodeId: "s=Temperature",
    dataType: "Double",
    engineeringUnitsRange: { low: -50, high: 150 },
    accessLevel: "CurrentRead",
    userAccessLevel: "CurrentRead",
    minimumSamplingInterval: 0,
    value: { dataType: DataType.Double, value: 20.5 },
  });
  vars.set("Temperature", { node: temperature, dataType: "Double" });
  add("Setpoint", "Int32", 0, true);
  add("Status", "Int32", 0, false);

  const parseValue = (dataType, s) => {
    const n = Number(s);
    if (s === undefined || s === "" || Number.isNaN(n)) throw new Error(`not a number: ${JSON.stringify(s)}`);
    switch (dataType) {
      case "Double":
        return n;
      case "Int32":
        if (!Number.isInteger(n) || n < -2147483648 || n > 2147483647) throw new Error(`not an Int32: ${s}`);
        return n;
      case "UInt32":
        if (!Number.isInteger(n) || n < 0 || n > 4294967295) throw new Error(`not a UInt32: ${s}`);
        return n;
      default:
        throw new Error(`cannot set a ${dataType}`);
    }
  };
  const setValue = (name, value, statusCode) => {
    const v = vars.get(name);
    if (!v) throw new Error(`no variable ${JSON.stringify(name)}`);
    v.node.setValueFromSource(new Variant({ dataType: DataType[v.dataType], value }), statusCode || StatusCodes.Good);
  };
  const bump = () => {
    for (const c of counters) {
      const cur = c.readValue().value.value;
      c.setValueFromSource(new Variant({ dataType: DataType.UInt32, value: (cur + 1) % 4294967296 }), StatusCodes.Good);
    }
  };

  await server.start();

  let tick;
  if (cfg.tickMs > 0) tick = setInterval(bump, cfg.tickMs);

  let exiting = false;
  const exit = (code) => {
    if (exiting) return;
    exiting = true;
    if (tick) clearInterval(tick);
    process.exit(code);
  };
  process.on("SIGTERM", () => exit(0));
  process.on("SIGINT", () => exit(0));

  const port = server.endpoints[0].port;
  process.stdout.write(`READY opc.tcp://${HOST}:${port} ${ns.namespaceUri} ${ns.index}\n`);

  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  rl.on("line", (line) => {
    const f = line.trim().split(/\s+/).filter(Boolean);
    if (f.length === 0) return;
    let answer = "ok";
    try {
      switch (f[0]) {
        case "set": {
          if (f.length !== 3) throw new Error("usage: set <name> <value>");
          const v = vars.get(f[1]);
          if (!v) throw new Error(`no variable ${JSON.stringify(f[1])}`);
          setValue(f[1], parseValue(v.dataType, f[2]));
          break;
        }
        case "bump":
          if (f.length !== 1) throw new Error("usage: bump");
          bump();
          break;
        case "status": {
          if (f.length !== 3) throw new Error("usage: status <name> <StatusCodeName>");
          const v = vars.get(f[1]);
          if (!v) throw new Error(`no variable ${JSON.stringify(f[1])}`);
          const sc = StatusCodes[f[2]];
          if (!sc || typeof sc !== "object" || typeof sc.value !== "number") throw new Error(`unknown status code ${JSON.stringify(f[2])}`);
          setValue(f[1], v.node.readValue().value.value, sc);
          break;
        }
        case "get": {
          if (f.length !== 2) throw new Error("usage: get <name>");
          const v = vars.get(f[1]);
          if (!v) throw new Error(`no variable ${JSON.stringify(f[1])}`);
          const dv = v.node.readValue();
          answer = `ok ${dv.value.value} ${dv.statusCode.name}`;
          break;
        }
        case "sessions": {
          if (f.length !== 1) throw new Error("usage: sessions");
          const sum = server.engine.serverDiagnosticsSummary;
          answer = `ok ${server.engine.currentSessionCount} ${sum.cumulatedSessionCount} ${server.engine.sessionTimeoutCount}`;
          break;
        }
        default:
          throw new Error(`unknown command ${JSON.stringify(f[0])} (set, bump, status, get, sessions)`);
      }
    } catch (err) {
      answer = `error ${err.message}`;
    }
    process.stdout.write(answer + "\n");
  });
  // The test's end of the pipe closed: the test is over (or dead).
  rl.on("close", () => exit(0));
}

main().catch((err) => {
  process.stderr.write(`opcua-testserver: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
