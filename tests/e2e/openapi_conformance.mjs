// Every answer the e2e suite gets from Outbound is checked against the OpenAPI document that the
// same server serves (GET /openapi.json), with ajv (JSON Schema 2020-12, as OpenAPI 3.1 uses):
// the status must be one the operation documents (or fall under its `default`, which is the
// error shape), and the body must match that response's schema. So the document cannot drift
// from the code: a field renamed, added or dropped in an answer fails whichever test saw it.
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const DOC_ID = 'https://outbound.invalid/openapi.json';

function pointer(...parts) {
  return '/' + parts.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
}

export class Conformance {
  constructor(doc) {
    this.doc = doc;
    this.ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
    addFormats(this.ajv);
    // The whole document as one schema resource: `#/components/schemas/X` references inside
    // response schemas resolve against it. OpenAPI's own keywords are ignored (strict: false).
    this.ajv.addSchema({ ...doc, $id: DOC_ID });
    this.validators = new Map();
    // Literal segments win over placeholders (as the router does): fewer placeholders first.
    this.templates = Object.keys(doc.paths)
      .map((t) => ({
        template: t,
        holes: (t.match(/\{[^}]+\}/g) || []).length,
        re: new RegExp('^' + t.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+') + '$'),
      }))
      .sort((a, b) => a.holes - b.holes);
  }

  // The operation for a request, or undefined when the document has no such path and method.
  operation(method, urlPath) {
    const p = urlPath.split('?')[0];
    for (const t of this.templates) {
      if (!t.re.test(p)) continue;
      const op = this.doc.paths[t.template][method.toLowerCase()];
      return op ? { template: t.template, op } : { template: t.template, op: undefined };
    }
    return undefined;
  }

  // The JSON pointer of the schema a response with `status` must match, or an error string.
  schemaPointer(template, method, status) {
    const responses = this.doc.paths[template][method.toLowerCase()].responses;
    const range = `${String(status)[0]}XX`;
    let key = [String(status), range].find((k) => k in responses);
    if (!key) {
      if (status >= 200 && status < 400) return { error: `${method} ${template}: status ${status} is not documented` };
      if (!('default' in responses)) return { error: `${method} ${template}: status ${status} is not documented` };
      key = 'default';
    }
    let resp = responses[key];
    let base = pointer('paths', template, method.toLowerCase(), 'responses', key);
    if (resp.$ref) {
      base = resp.$ref.slice(1);
      resp = base.split('/').slice(1).reduce((o, k) => o[k.replace(/~1/g, '/').replace(/~0/g, '~')], this.doc);
    }
    if (!resp.content) return { none: true };
    const type = Object.keys(resp.content)[0];
    if (!resp.content[type].schema) return { none: true, type };
    return { pointer: base + pointer('content', type, 'schema'), type };
  }

  // Throws unless `value` matches the schema at `pointer` (a JSON pointer into the document).
  checkSchema(pointer, value) {
    const validate = this.ajv.compile({ $ref: `${DOC_ID}#${pointer}` });
    if (!validate(value)) throw new Error(`${pointer}: ${this.ajv.errorsText(validate.errors)}`);
  }

  // Throws an Error describing every mismatch of one answer.
  check(method, urlPath, status, contentType, body) {
    if (method === 'HEAD' || method === 'OPTIONS') return;
    const found = this.operation(method, urlPath);
    let where;
    if (!found || !found.op) {
      // No such route (404 route_not_found) or method (405): the error shape still holds.
      if (status < 400) throw new Error(`${method} ${urlPath}: answered ${status} but the OpenAPI document has no such operation`);
      where = { pointer: '/components/schemas/Error', type: 'application/json' };
    } else {
      where = this.schemaPointer(found.template, method, status);
      if (where.error) throw new Error(where.error);
    }
    if (status === 204 || where.none) return;
    if (where.type === 'application/json') {
      if (!/^application\/json/.test(contentType || '')) {
        throw new Error(`${method} ${urlPath}: ${status} with content-type ${contentType}, documented application/json`);
      }
    } else {
      return; // text/plain (metrics), text/html (portal): the type was checked above
    }
    let validate = this.validators.get(where.pointer);
    if (!validate) {
      validate = this.ajv.compile({ $ref: `${DOC_ID}#${where.pointer}` });
      this.validators.set(where.pointer, validate);
    }
    if (!validate(body)) {
      const errors = validate.errors.map((e) => `${e.instancePath || '(root)'} ${e.message}${e.params?.additionalProperty ? `: ${e.params.additionalProperty}` : ''}`).join('; ');
      throw new Error(`${method} ${urlPath} → ${status} does not match the OpenAPI document (${where.pointer}): ${errors}\nbody: ${JSON.stringify(body).slice(0, 600)}`);
    }
  }
}
