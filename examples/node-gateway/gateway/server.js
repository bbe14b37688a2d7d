'use strict';
/*
 * The shop's API gateway in Node.js: a drop-in replacement for the Python gateway
 * (services/gateway, shop/api.py + shop/remote.py), with Node's standard library only.
 *
 * The same public API, the same settings (environment) and the same calls to the Python
 * inference service (POST {INFERENCE_URL}/v1/recommend, GET /readyz, POST /v1/faults), so that
 * the two gateways can be benchmarked against each other for the cost of the hop:
 *
 *   GET  /healthz            alive
 *   GET  /readyz             ready when every inference replica is
 *   POST /recommend          {"user_id": U, "k": K}: the inference's items joined with the catalog
 *   GET  /products/{id}      one product
 *   GET  /products?category=C&limit=L&offset=O
 *   POST /faults             only with SHOP_FAULTS=on: forwarded to the inference service
 *
 * The catalog is this gateway's own: the same categories and words as shop/catalog.py, but not
 * the same products (that one comes from Python's random). Each product is computed from
 * (CATALOG_SEED, id) by an integer hash, so a million of them cost only a category index.
 */

const http = require('http');

const MAX_BODY_BYTES = 4096;
const MAX_K = 100;
const DEFAULT_K = 10;
const MAX_PAGE = 100;
const DEFAULT_PAGE = 20;
const MAX_OFFSET = 10_000_000;
const MAX_CATEGORY_LENGTH = 64;
const READY_TIMEOUT_MS = 1000;
const SHUTDOWN_GRACE_MS = 4500; // the exit comes before 5 s even with connections still open
const UNVERSIONED = '1'; // the model version of an inference service that reports none
const MODEL_VERSION_PATTERN = /^[A-Za-z0-9._-]{1,32}$/; // what the inference service allows: safe in a header

const N_ITEMS = { tiny: 5_000, small: 50_000, large: 1_000_000 }; // shop/presets.py

const CATEGORIES = ['books', 'electronics', 'garden', 'kitchen', 'toys', 'sports', 'beauty', 'music', 'games', 'office', 'pets', 'tools'];
const ADJECTIVES = ['Classic', 'Compact', 'Deluxe', 'Eco', 'Essential', 'Handmade', 'Modern', 'Portable', 'Premium', 'Rugged', 'Smart', 'Vintage', 'Wireless', 'Organic', 'Pro', 'Mini'];
const NOUNS = {
  books: ['Novel', 'Cookbook', 'Atlas', 'Guide', 'Anthology'],
  electronics: ['Speaker', 'Headphones', 'Charger', 'Camera', 'Monitor'],
  garden: ['Planter', 'Hose', 'Trowel', 'Seed Kit', 'Lantern'],
  kitchen: ['Kettle', 'Skillet', 'Knife', 'Grinder', 'Teapot'],
  toys: ['Puzzle', 'Robot', 'Kite', 'Blocks', 'Plush'],
  sports: ['Racket', 'Ball', 'Yoga Mat', 'Bottle', 'Helmet'],
  beauty: ['Serum', 'Brush', 'Balm', 'Mirror', 'Soap'],
  music: ['Ukulele', 'Vinyl', 'Metronome', 'Drum Pad', 'Harmonica'],
  games: ['Board Game', 'Card Deck', 'Controller', 'Dice Set', 'Chess Set'],
  office: ['Notebook', 'Desk Lamp', 'Stapler', 'Pen Set', 'Planner'],
  pets: ['Leash', 'Feeder', 'Cat Tree', 'Chew Toy', 'Bed'],
  tools: ['Drill', 'Wrench', 'Level', 'Toolbox', 'Saw'],
};
const NOUNS_PER_CATEGORY = 5;
const MIN_CENTS = 100; // prices from 1.00 ...
const PRICE_STEPS = 50_000 - MIN_CENTS + 1; // ... to 500.00

// ---------------------------------------------------------------------------------- settings

class SettingsError extends Error {}

/** The settings from env, as shop/settings.py reads them; SettingsError says what is wrong. */
function readSettings(env) {
  const modelSize = env.MODEL_SIZE ?? 'small';
  if (!Object.hasOwn(N_ITEMS, modelSize)) {
    throw new SettingsError(`MODEL_SIZE='${modelSize}' is not one of ${Object.keys(N_ITEMS).join(', ')}`);
  }
  return {
    host: env.HOST || '127.0.0.1',
    port: portNumber(env.PORT),
    nItems: N_ITEMS[modelSize],
    catalogSeed: integerSetting(env, 'CATALOG_SEED', 0),
    inferenceUrls: inferenceUrls(env.INFERENCE_URL),
    // One deadline per call: a service that does not answer within connect + read is given up.
    timeoutMs: 1000 * (positiveSetting(env, 'INFERENCE_CONNECT_TIMEOUT_S', 0.5) + positiveSetting(env, 'INFERENCE_TIMEOUT_S', 1.5)),
    faults: switchSetting(env, 'SHOP_FAULTS', false),
  };
}

function portNumber(raw) {
  if (raw === undefined || raw === '') return 8000;
  const port = /^\s*\+?\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!(port <= 65535)) throw new SettingsError(`PORT='${raw}' is not a number from 0 to 65535`);
  return port;
}

function inferenceUrls(raw) {
  if (!raw) throw new SettingsError("INFERENCE_URL is not set: the gateway needs the inference service's address");
  const urls = raw.split(',').map((part) => part.trim());
  if (!urls.every((url) => url.startsWith('http://') && URL.canParse(url))) {
    throw new SettingsError(`INFERENCE_URL='${raw}': each comma-separated URL must start with http:// (this gateway does not speak https)`);
  }
  return urls.map((url) => url.replace(/\/+$/, ''));
}

function integerSetting(env, key, fallback) {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  const value = /^\s*[+-]?\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value)) throw new SettingsError(`${key}='${raw}' is not a valid int`);
  return value;
}

function positiveSetting(env, key, fallback) {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  const value = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  if (Number.isNaN(value)) throw new SettingsError(`${key}='${raw}' is not a valid float`);
  if (!(value > 0)) throw new SettingsError(`${key} must be > 0`);
  return value;
}

function switchSetting(env, key, fallback) {
  const raw = (env[key] || '').trim().toLowerCase();
  if (raw === '') return fallback;
  if (['on', 'true', '1', 'yes'].includes(raw)) return true;
  if (['off', 'false', '0', 'no'].includes(raw)) return false;
  throw new SettingsError(`${key}='${env[key]}': use on or off`);
}

// ----------------------------------------------------------------------------------- catalog

/** murmur3's 32-bit finalizer: every input bit changes about half of the output bits. */
function mix(x) {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

class Catalog {
  /** Products 0 .. nItems-1, the same for the same (nItems, seed) on every machine. */
  constructor(nItems, seed) {
    this.size = nItems;
    // A seed of up to 53 bits folded into 32: its high and low words each change every product.
    this.key = mix((seed >>> 0) ^ mix((Math.floor(seed / 2 ** 32) >>> 0) ^ 0x9e3779b9));
    // Every product's JSON but its id and price, per (category, adjective, noun): 960 strings,
    // so that a product costs two hashes and a concatenation, whatever the catalog's size.
    this.fragments = CATEGORIES.map((category) => ADJECTIVES.flatMap((adjective) => NOUNS[category].map(
      (noun) => `"name":${JSON.stringify(`${adjective} ${noun}`)},"category":"${category}","price":`,
    )));
    this.byCategory = this.indexByCategory();
  }

  hash(id) {
    // Multiplying by an odd constant is a bijection on 32 bits: no two ids share a hash input.
    return mix(Math.imul(id, 0x9e3779b9) ^ this.key);
  }

  categoryIndex(id) {
    return this.hash(id) % CATEGORIES.length;
  }

  /** Each category's product ids in id order: what listing by category needs, 4 bytes an id. */
  indexByCategory() {
    const categoryOf = new Uint8Array(this.size);
    const counts = new Array(CATEGORIES.length).fill(0);
    for (let id = 0; id < this.size; id++) counts[(categoryOf[id] = this.categoryIndex(id))]++;
    const ids = counts.map((count) => new Int32Array(count));
    const filled = new Array(CATEGORIES.length).fill(0);
    for (let id = 0; id < this.size; id++) ids[categoryOf[id]][filled[categoryOf[id]]++] = id;
    return new Map(CATEGORIES.map((category, index) => [category, ids[index]]));
  }

  has(id) {
    return Number.isInteger(id) && id >= 0 && id < this.size;
  }

  /** Product id's JSON object up to its closing brace: {"id":..,"name":..,"category":..,"price":.. */
  open(id) {
    const h = this.hash(id);
    const style = mix(h ^ 0x27d4eb2d);
    const fragment = this.fragments[h % CATEGORIES.length][(style & 15) * NOUNS_PER_CATEGORY + ((style >>> 4) % NOUNS_PER_CATEGORY)];
    const cents = MIN_CENTS + (mix(style ^ 0x165667b1) % PRICE_STEPS);
    return '{"id":' + id + ',' + fragment + cents / 100;
  }

  json(id) {
    return this.open(id) + '}';
  }

  /** Up to limit products' JSON objects in id order from offset, of category when given. */
  list(category, limit, offset) {
    const items = [];
    if (category === undefined) {
      const end = Math.min(this.size, offset + limit);
      for (let id = offset; id < end; id++) items.push(this.json(id));
    } else {
      for (const id of this.byCategory.get(category)?.subarray(offset, offset + limit) ?? []) items.push(this.json(id));
    }
    return items;
  }
}

// ---------------------------------------------------------------------------------- upstream

const TIMED_OUT = Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' });

/**
 * One call to the inference service: done(error, status, payload) once, within timeoutMs
 * (error TIMED_OUT past it). route: prepared http.request options, shared by every call.
 * retryable: whether the call may be sent again (a fault may not: a crash sent twice is two).
 */
function exchange(route, body, timeoutMs, done, retryable = true) {
  let request;
  let answered = false;
  let retried = false;
  let finished = false;
  const timer = setTimeout(() => {
    finish(TIMED_OUT);
    request.destroy();
  }, timeoutMs);

  function send() {
    request = http.request(route, onResponse);
    request.on('error', onError);
    request.end(body);
  }

  function onError(error) {
    if (finished) return; // destroyed past the deadline: already answered
    // A pooled connection the service closed (idle timeout, restart) just as it was reused:
    // a call safe to repeat gets one fresh connection rather than failing.
    if (retryable && !answered && !retried && request.reusedSocket && error.code === 'ECONNRESET') {
      retried = true;
      send();
      return;
    }
    finish(error);
  }

  function onResponse(response) {
    answered = true;
    const chunks = [];
    response.on('data', (chunk) => chunks.push(chunk));
    response.on('end', () => finish(null, response.statusCode, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    response.on('error', finish);
  }

  function finish(error, status, payload) {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    done(error, status, payload);
  }

  send();
}

function errorCode(error) {
  return error.code || error.name;
}

/** payload's JSON, or undefined when it is not JSON. */
function parseJson(payload) {
  try {
    return JSON.parse(payload);
  } catch {
    return undefined;
  }
}

/** payload's JSON "detail" when it is a string, else undefined. */
function detailOf(payload) {
  const detail = parseJson(payload)?.detail;
  return typeof detail === 'string' ? detail : undefined;
}

/** The inference replicas, round-robin, each with its request options prepared once. */
class Inference {
  constructor(urls, timeoutMs) {
    // Keep-alive and no Nagle: a call reuses a warm connection and its small writes go out at once.
    // timeout: idle pooled connections close before uvicorn's 5 s keep-alive closes them from its side.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 256, noDelay: true, timeout: 4000 });
    this.agent = agent;
    this.timeoutMs = Math.min(timeoutMs, 2 ** 31 - 1); // setTimeout's largest delay
    this.replicas = urls.map((url) => {
      const { hostname, port, pathname } = new URL(url);
      const base = { host: hostname.replace(/^\[(.*)\]$/, '$1'), port: port || 80, agent };
      const prefix = pathname.replace(/\/+$/, '');
      const post = (path) => ({ ...base, method: 'POST', path: prefix + path, headers: { 'content-type': 'application/json' } });
      return { url, recommend: post('/v1/recommend'), faults: post('/v1/faults'), ready: { ...base, method: 'GET', path: prefix + '/readyz' } };
    });
    this.turns = { recommend: 0, faults: 0 }; // one round-robin per kind of call, as the Python gateway's
  }

  /** The replica whose turn it is for a call of kind. */
  nextReplica(kind) {
    const replica = this.replicas[this.turns[kind]];
    this.turns[kind] = (this.turns[kind] + 1) % this.replicas.length;
    return replica;
  }

  recommend(body, done) {
    exchange(this.nextReplica('recommend').recommend, body, this.timeoutMs, done);
  }

  /** POST body to replica's /v1/faults; resolves {error, status, payload}. */
  fault(replica, body) {
    return new Promise((resolve) => {
      exchange(replica.faults, body, this.timeoutMs, (error, status, payload) => resolve({ error, status, payload }), false);
    });
  }

  /** Why replica is not ready, or null when it answers its /readyz with 200 in time. */
  notReadyReason(replica) {
    return new Promise((resolve) => {
      exchange(replica.ready, undefined, READY_TIMEOUT_MS, (error, status) => {
        if (error) resolve(`inference service unreachable at ${replica.url} (${errorCode(error)})`);
        else resolve(status === 200 ? null : `inference service at ${replica.url} not ready (${status})`);
      });
    });
  }
}

// ------------------------------------------------------------------------------ validation

/** A FastAPI-like validation error: {"type":..,"loc":..,"msg":..,"input":..[,"ctx":..]}. */
function invalid(type, loc, msg, input, ctx) {
  return ctx === undefined ? { type, loc, msg, input } : { type, loc, msg, input, ctx };
}

/**
 * Why value is not an integer in [min, max] as pydantic reads a JSON field (lax: true and false
 * are 1 and 0, a string holding an integer is that integer), or null when it is; as a number.
 */
function integerFieldError(value, loc, min, max) {
  if (typeof value === 'boolean') return integerFieldError(value ? 1 : 0, loc, min, max);
  if (typeof value === 'string') {
    const parsed = parseIntegerText(value);
    if (parsed === null) return invalid('int_parsing', loc, 'Input should be a valid integer, unable to parse string as an integer', value);
    return integerFieldError(parsed.value, loc, min, max);
  }
  if (typeof value !== 'number') return invalid('int_type', loc, 'Input should be a valid integer', value);
  if (!Number.isInteger(value)) {
    return invalid('int_from_float', loc, 'Input should be a valid integer, got a number with a fractional part', value);
  }
  // Past 2^53 a JSON number no longer names one integer: forwarded, it would be another user.
  if (!Number.isSafeInteger(value)) {
    return invalid('int_parsing_size', loc, 'Unable to parse input string as an integer, exceeded maximum size', value);
  }
  if (value < min) return invalid('greater_than_equal', loc, `Input should be greater than or equal to ${min}`, value, { ge: min });
  if (value > max) return invalid('less_than_equal', loc, `Input should be less than or equal to ${max}`, value, { le: max });
  return null;
}

/** A valid integer field's value (integerFieldError said it is one) as a number. */
function integerOf(value) {
  if (typeof value === 'boolean') return value ? 1 : 0;
  return typeof value === 'string' ? parseIntegerText(value).value : value;
}

/** The errors of a parsed POST /recommend body, as pydantic orders them, or null when valid. */
function recommendErrors(request) {
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    return [invalid('model_attributes_type', ['body'], 'Input should be a valid dictionary or object to extract fields from', request)];
  }
  const userError = request.user_id === undefined
    ? invalid('missing', ['body', 'user_id'], 'Field required', request)
    : integerFieldError(request.user_id, ['body', 'user_id'], 0, Infinity);
  const kError = request.k === undefined ? null : integerFieldError(request.k, ['body', 'k'], 1, MAX_K);
  const errors = [];
  if (userError !== null) errors.push(userError);
  if (kError !== null) errors.push(kError);
  for (const key in request) {
    if (key !== 'user_id' && key !== 'k') errors.push(invalid('extra_forbidden', ['body', key], 'Extra inputs are not permitted', request[key]));
  }
  return errors.length === 0 ? null : errors;
}

/** The integer in text as pydantic reads one (blanks, sign, "1_000", "7.0"), or null. */
function parseIntegerText(text) {
  const match = /^\s*([+-]?)(\d+(?:_\d+)*)(?:\.0+)?\s*$/.exec(text);
  if (match === null) return null;
  const digits = match[2].replace(/_/g, '').replace(/^0+(?=\d)/, '');
  // Longer than 15 digits: past every limit here; the digits still name it in a message.
  const magnitude = digits.length > 15 ? Infinity : Number(digits);
  return { value: match[1] === '-' ? -magnitude : magnitude, digits };
}

/** The integer in text within [min, max], or a validation error (an object with a type). */
function integerParam(text, loc, min, max) {
  const parsed = parseIntegerText(text);
  if (parsed === null) return invalid('int_parsing', loc, 'Input should be a valid integer, unable to parse string as an integer', text);
  if (parsed.value < min) return invalid('greater_than_equal', loc, `Input should be greater than or equal to ${min}`, text, { ge: min });
  if (parsed.value > max) return invalid('less_than_equal', loc, `Input should be less than or equal to ${max}`, text, { le: max });
  return parsed;
}

/** The query string's parameters; a repeated one keeps its last value, as Starlette's. */
function queryParams(query) {
  const params = new Map();
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    params.set(decodeComponent(eq < 0 ? pair : pair.slice(0, eq)), eq < 0 ? '' : decodeComponent(pair.slice(eq + 1)));
  }
  return params;
}

/** A request path with its %-escapes decoded ("+" stays "+" in a path); a malformed one as sent. */
function decodePath(path) {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function decodeComponent(text) {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text; // a malformed escape stays as sent, as Python's parse_qsl leaves it
  }
}

/** Whether a content-type names JSON as FastAPI reads it (application/json, application/*+json; none is not). */
function isJson(contentType) {
  if (contentType === undefined) return false;
  if (contentType === 'application/json') return true;
  const type = contentType.split(';', 1)[0].trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

/** Where JSON.parse's error message says the text went wrong (V8 words it "at position N"). */
function jsonErrorPosition(error, body) {
  const match = /at position (\d+)/.exec(error.message);
  return match === null ? body.length : Number(match[1]);
}

// ---------------------------------------------------------------------------------- answers

// The Python gateway's bodies byte for byte (its /healthz and /readyz send the Status shape).
const HEALTHY = '{"status":"ok","reasons":[],"model_version":null}';
const READY = '{"status":"ready","reasons":[]}';
const NOT_FOUND = '{"detail":"Not Found"}';
const METHOD_NOT_ALLOWED = '{"detail":"Method Not Allowed"}';
const TOO_LARGE = `{"detail": "request body larger than ${MAX_BODY_BYTES} bytes"}`;
const EMPTY = Buffer.alloc(0);

function answer(res, status, body) {
  res.writeHead(status, { 'content-length': Buffer.byteLength(body), 'content-type': 'application/json' });
  res.end(body);
}

function answerProblem(res, status, detail) {
  answer(res, status, JSON.stringify({ detail }));
}

function answerInvalid(res, errors) {
  answer(res, 422, JSON.stringify({ detail: errors }));
}

function unavailable(res, why) {
  answerProblem(res, 503, `recommendations unavailable: ${why}`);
}

/** 413, and the connection closes: reading the rest of a large body to keep it is not worth it. */
/** FastAPI's 422 for a body that is not sent as JSON: it reads it as text, not an object. */
function answerNotJson(res, body) {
  answerInvalid(res, [invalid('model_attributes_type', ['body'], 'Input should be a valid dictionary or object to extract fields from', body.toString())]);
}

function answerTooLarge(res) {
  res.shouldKeepAlive = false;
  answer(res, 413, TOO_LARGE);
}

/** onBody(the request's body) once it is read; a 413 instead once it grows past the bound. */
function readBody(req, res, onBody) {
  let body = EMPTY;
  let refused = false;
  req.on('data', (chunk) => {
    if (refused) return;
    if (body.length + chunk.length > MAX_BODY_BYTES) {
      refused = true;
      answerTooLarge(res);
      return;
    }
    body = body.length === 0 ? chunk : Buffer.concat([body, chunk]);
  });
  req.on('end', () => {
    if (!refused) onBody(body);
  });
}

// ---------------------------------------------------------------------------------- gateway

class Gateway {
  constructor(settings, catalog) {
    this.catalog = catalog;
    this.inference = new Inference(settings.inferenceUrls, settings.timeoutMs);
    this.stopping = false;
    const routes = [
      ['/healthz', { GET: (req, res) => answer(res, 200, HEALTHY) }],
      ['/readyz', { GET: (req, res) => this.readyz(res) }],
      ['/recommend', { POST: (req, res) => this.recommend(req, res) }],
      ['/products', { GET: (req, res, query) => this.listProducts(res, query) }],
    ];
    if (settings.faults) routes.push(['/faults', { POST: (req, res) => this.faults(req, res) }]);
    this.routes = new Map(routes);
    this.productRoute = { GET: (req, res, query, id) => this.getProduct(res, id) };
    this.handle = this.handle.bind(this);
  }

  handle(req, res) {
    try {
      this.dispatch(req, res);
    } catch (error) {
      // A bug, not a bad request: say so in the log, answer as uvicorn would, and keep serving.
      process.stderr.write(`request ${req.method} ${req.url} failed: ${error.stack}\n`);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-length': 21, 'content-type': 'text/plain; charset=utf-8' });
        res.end('Internal Server Error');
      }
    }
  }

  dispatch(req, res) {
    if (this.stopping) res.shouldKeepAlive = false; // finish this request, then let the connection go
    if (Number(req.headers['content-length']) > MAX_BODY_BYTES) {
      answerTooLarge(res);
      return;
    }
    const url = req.url;
    const q = url.indexOf('?');
    const path = decodePath(q < 0 ? url : url.slice(0, q)); // routed decoded, as Starlette routes
    const [route, id] = this.route(path);
    if (route === undefined && path.length > 1 && path.endsWith('/') && this.route(path.slice(0, -1))[0] !== undefined) {
      // Starlette's redirect_slashes: the same path without its trailing slash.
      const query = q < 0 ? '' : url.slice(q);
      res.writeHead(307, { 'content-length': 0, location: `http://${req.headers.host}${encodeURI(path.slice(0, -1))}${query}` });
      res.end();
    } else if (route === undefined) {
      answer(res, 404, NOT_FOUND);
    } else if (route[req.method] === undefined) {
      res.setHeader('allow', Object.keys(route).join(', '));
      answer(res, 405, METHOD_NOT_ALLOWED);
    } else {
      route[req.method](req, res, q < 0 ? '' : url.slice(q + 1), id);
    }
  }

  /** [the route of a decoded path (undefined when none), the product id it names]. */
  route(path) {
    const route = this.routes.get(path);
    if (route === undefined && path.startsWith('/products/') && path.indexOf('/', 10) < 0 && path.length > 10) {
      return [this.productRoute, path.slice(10)];
    }
    return [route, undefined];
  }

  // The hot path: parse, validate, one call to inference, join with the catalog, answer.
  recommend(req, res) {
    const contentType = req.headers['content-type'];
    readBody(req, res, (body) => {
      if (body.length === 0) {
        answerInvalid(res, [invalid('missing', ['body'], 'Field required', null)]);
        return;
      }
      if (!isJson(contentType)) {
        answerNotJson(res, body);
        return;
      }
      let request;
      try {
        request = JSON.parse(body);
      } catch (error) {
        const position = jsonErrorPosition(error, body);
        answerInvalid(res, [invalid('json_invalid', ['body', position], 'JSON decode error', {}, { error: error.message })]);
        return;
      }
      const errors = recommendErrors(request);
      if (errors !== null) {
        answerInvalid(res, errors);
        return;
      }
      const userId = integerOf(request.user_id);
      const k = request.k === undefined ? DEFAULT_K : integerOf(request.k);
      this.inference.recommend('{"user_id":' + userId + ',"k":' + k + '}', (error, status, payload) => {
        this.answerRecommendation(res, userId, error, status, payload);
      });
    });
  }

  answerRecommendation(res, userId, error, status, payload) {
    if (error === TIMED_OUT) return unavailable(res, 'inference service timed out');
    if (error) return unavailable(res, `inference service unreachable (${errorCode(error)})`);
    if (status === 404) return answerProblem(res, 404, detailOf(payload) ?? `user ${userId} not found`);
    if (status !== 200) return unavailable(res, `inference service answered ${status}`);
    const joined = this.joinWithCatalog(userId, payload);
    if (typeof joined === 'string') return unavailable(res, joined);
    res.writeHead(200, { 'content-length': Buffer.byteLength(joined.body), 'content-type': 'application/json', 'x-model-version': joined.version });
    res.end(joined.body);
  }

  /**
   * The public answer for the inference's payload: {body, version}, or why it cannot be given
   * (a string). The JSON is written by hand: the catalog's fragments are JSON already, and the
   * keys keep the Python gateway's order.
   */
  joinWithCatalog(userId, payload) {
    const answer = parseJson(payload);
    const version = answer?.model_version ?? UNVERSIONED;
    if (!Array.isArray(answer?.items) || typeof version !== 'string' || !MODEL_VERSION_PATTERN.test(version)) {
      return 'inference service answered 200 without a list of items or a valid model_version';
    }
    let body = '{"user_id":' + userId + ',"items":[';
    for (let i = 0; i < answer.items.length; i++) {
      const item = answer.items[i];
      if (item === null || !this.catalog.has(item.id) || typeof item.score !== 'number') {
        return `inference service answered an item not in this catalog of ${this.catalog.size} (is MODEL_SIZE the same there?)`;
      }
      body += (i === 0 ? '' : ',') + this.catalog.open(item.id) + ',"score":' + item.score + '}';
    }
    return { body: body + '],"model_version":"' + version + '"}', version };
  }

  getProduct(res, text) {
    const id = integerParam(text, ['path', 'product_id'], 0, Infinity);
    if (id.type !== undefined) return answerInvalid(res, [id]);
    if (!this.catalog.has(id.value)) return answerProblem(res, 404, `product ${id.digits} not found`);
    answer(res, 200, this.catalog.json(id.value));
  }

  listProducts(res, query) {
    const params = queryParams(query);
    const category = params.get('category');
    const limit = params.has('limit') ? integerParam(params.get('limit'), ['query', 'limit'], 1, MAX_PAGE) : { value: DEFAULT_PAGE };
    const offset = params.has('offset') ? integerParam(params.get('offset'), ['query', 'offset'], 0, MAX_OFFSET) : { value: 0 };
    const errors = [limit, offset].filter((param) => param.type !== undefined);
    if (category !== undefined && [...category].length > MAX_CATEGORY_LENGTH) { // characters, as Python counts
      errors.unshift(invalid('string_too_long', ['query', 'category'], `String should have at most ${MAX_CATEGORY_LENGTH} characters`, category, { max_length: MAX_CATEGORY_LENGTH }));
    }
    if (errors.length > 0) return answerInvalid(res, errors);
    answer(res, 200, '{"items":[' + this.catalog.list(category, limit.value, offset.value).join(',') + ']}');
  }

  async readyz(res) {
    const reasons = await Promise.all(this.inference.replicas.map((replica) => this.inference.notReadyReason(replica)));
    const reason = reasons.find((why) => why !== null);
    // Asked all at once, reported as the Python gateway does (it asks in turn): the first in
    // INFERENCE_URL's order that is not ready.
    if (reason === undefined) answer(res, 200, READY);
    else answer(res, 503, JSON.stringify({ status: 'not ready', reasons: [reason] }));
  }

  /**
   * POST /faults (SHOP_FAULTS=on): the body goes as sent to the inference service, which
   * validates it as the Python gateway would; its answer comes back. A clear goes to every
   * replica, since the fault it reverts may be in any of them.
   */
  faults(req, res) {
    const contentType = req.headers['content-type'];
    readBody(req, res, async (body) => {
      if (body.length > 0 && !isJson(contentType)) return answerNotJson(res, body); // as FastAPI's route refuses it
      const kind = parseJson(body)?.kind; // not JSON: the inference service words the 422
      const replicas = this.inference.replicas;
      const targets = kind === 'clear' && replicas.length > 1 ? replicas : [this.inference.nextReplica('faults')];
      const answers = await Promise.all(targets.map((replica) => this.inference.fault(replica, body)));
      const failed = answers.findIndex((reply) => reply.error || reply.status !== 200);
      if (failed >= 0) return relayFaultFailure(res, targets[failed], kind, answers[failed]);
      if (targets.length === 1) return answer(res, 200, answers[0].payload.toString());
      answer(res, 200, JSON.stringify({ fault: 'clear', cleared: clearedUnion(answers), replicas: answers.length }));
    });
  }

  /** Stop taking connections; exit 0 once the open ones are done, or after the grace period. */
  stop(server) {
    this.stopping = true;
    server.close(() => process.exit(0));
    // close() lets go of the connections idle now; the busy ones go idle once answered: those too.
    server.closeIdleConnections();
    setInterval(() => server.closeIdleConnections(), 50).unref();
    setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS).unref();
  }
}

/** The answer to a fault the inference service did not take, in the Python gateway's words. */
function relayFaultFailure(res, replica, kind, { error, status, payload }) {
  const url = replica.url + '/v1/faults';
  if (error === TIMED_OUT) return answerProblem(res, 503, `inference service at ${url} timed out on the ${kind} fault`);
  if (error) return answerProblem(res, 503, `inference service at ${url} did not answer the ${kind} fault (${errorCode(error)})`);
  if (status === 422) return answer(res, 422, payload.toString()); // the Python gateway's own 422, same model
  if (status === 404) return answerProblem(res, 503, `inference service at ${url} has no fault switch: set SHOP_FAULTS=on there too`);
  answerProblem(res, 503, `inference service at ${url} answered ${status} to the ${kind} fault: ${detailOf(payload) ?? 'no detail'}`);
}

function clearedUnion(answers) {
  const cleared = new Set();
  for (const { payload } of answers) {
    const kinds = parseJson(payload)?.cleared;
    if (Array.isArray(kinds)) kinds.forEach((kind) => cleared.add(kind));
  }
  return [...cleared].sort();
}

// ------------------------------------------------------------------------------------- main

function main() {
  let settings;
  try {
    settings = readSettings(process.env);
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    process.stderr.write(`invalid setting: ${error.message}\n`);
    process.exit(1);
  }
  const gateway = new Gateway(settings, new Catalog(settings.nItems, settings.catalogSeed));
  const server = http.createServer({ noDelay: true }, gateway.handle);
  server.keepAliveTimeout = 5000;
  server.on('error', (error) => {
    process.stderr.write(`cannot listen on ${settings.host}:${settings.port}: ${error.message}\n`);
    process.exit(1);
  });
  for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => gateway.stop(server));
  server.listen(settings.port, settings.host, () => {
    if (settings.faults) {
      process.stderr.write('fault switch ON: POST /faults crashes, leaks or slows the model\'s process; never in a real deployment\n');
    }
    process.stdout.write(`gateway listening on http://${settings.host}:${settings.port} (inference: ${settings.inferenceUrls.join(', ')})\n`);
  });
}

main();
