import type { ValidateFunction } from 'ajv/dist/2020';
import { CommandTypes, compilePayloadSchema, describePayloadFailure } from '../config/command-types';
import { InvalidRequestError } from '../lib/errors';

/**
 * The `payload_schema` of each command task type, as the managers check it: a payload that fails it is
 * refused at POST (and when a schedule is written), so that no task is stored that its endpoints would refuse.
 */
export class PayloadSchemas {
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(commandTypes: CommandTypes) {
    for (const [type, def] of Object.entries(commandTypes)) {
      if (def.payload_schema !== undefined) this.validators.set(type, compilePayloadSchema(def.payload_schema));
    }
  }

  /** Throws a 400 naming the first field of `payload` that fails the type's schema. */
  check(type: string, payload: unknown): void {
    const validate = this.validators.get(type);
    if (validate && !validate(payload)) throw new InvalidRequestError(describePayloadFailure(validate));
  }
}
