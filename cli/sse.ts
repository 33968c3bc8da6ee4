import { createParser, type EventSourceMessage } from 'eventsource-parser';

/**
 * The messages of a server-sent event stream, as they arrive, from a fetch response's body (the
 * EventSource API cannot send an Authorization header). Ends when the server closes the stream; throws
 * when the connection breaks (or is aborted).
 */
export async function* readServerSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<EventSourceMessage> {
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (message) => queue.push(message) });
  const decoder = new TextDecoder();
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    while (queue.length > 0) yield queue.shift() as EventSourceMessage;
  }
}
