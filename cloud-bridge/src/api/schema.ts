/**
 * The sharing API's OpenAPI 3.1 document (`cloud-bridge/api/openapi.json`) and its schemas compiled with ajv 8
 * (JSON Schema 2020-12, the dialect OpenAPI 3.1 uses) and ajv-formats (`date-time`). ajv rather than a
 * request-validator framework: the router is ours (no Express), ajv is the maintained reference validator of
 * that dialect, and compiling the document's own component schemas keeps one source of truth: what the
 * server refuses is exactly what the document says, and the tests validate every response against it.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import document from '../../api/openapi.json' with { type: 'json' };

/** The OpenAPI document as checked in. */
export const OPENAPI: typeof document = document;

const SCHEMAS_ID = 'https://tandem.example/api/v1/schemas';

// ajv-formats is CommonJS with a default export; under NodeNext its type is the module namespace.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

function build(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: false, strict: true, allowUnionTypes: true });
  addFormats(ajv);
  // The component schemas as one JSON Schema document: `#/components/schemas/X` becomes `#/$defs/X`.
  const text = JSON.stringify(document.components.schemas).replaceAll('#/components/schemas/', '#/$defs/');
  ajv.addSchema({ $id: SCHEMAS_ID, $defs: JSON.parse(text) as object });
  return ajv;
}

let ajv: Ajv2020 | undefined;
const compiled = new Map<string, ValidateFunction>();

/** The validator of component schema `name` (`ShareRequest`, `LockView`, ...). */
export function validatorOf(name: string): ValidateFunction {
  let v = compiled.get(name);
  if (v === undefined) {
    ajv ??= build();
    v = ajv.getSchema(`${SCHEMAS_ID}#/$defs/${name}`);
    if (v === undefined) throw new Error(`no schema ${name} in the OpenAPI document`);
    compiled.set(name, v);
  }
  return v;
}

/** One line naming the field at fault and what is wrong with it. */
export function describeErrors(errors: readonly ErrorObject[] | null | undefined, what = 'body'): string {
  const e = errors?.[0];
  if (e === undefined) return `${what} is invalid`;
  const at = e.instancePath === '' ? what : `${what}${e.instancePath.replaceAll('/', '.')}`;
  switch (e.keyword) {
    case 'additionalProperties':
      return `${at}: unknown field "${String(e.params.additionalProperty)}"`;
    case 'required':
      return `${at}: "${String(e.params.missingProperty)}" is required`;
    case 'enum':
      return `${at} must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `${at} must be ${JSON.stringify(e.params.allowedValue)}`;
    default:
      return `${at} ${e.message ?? 'is invalid'}`;
  }
}
