import type { ChannelModel } from 'amqplib';
import type { Writable } from 'node:stream';

/**
 * amqplib writes every frame (each ack, each publish) to its socket with a separate `write`: one system
 * call and one TCP segment per frame, which under load costs a consumer or a publisher more CPU than
 * anything else it does, and costs the broker one read per segment. Corking the socket from the first
 * write of an event-loop turn until the end of that turn sends the frames of the turn (a batch's acks,
 * concurrent publishes) as one `writev`. Order, backpressure (`write`'s return value, `drain`) and
 * heartbeats are unchanged: frames still go out in the same turn they were written.
 *
 * amqplib has no option for this; its socket is reached through `connection.stream`, present in every
 * amqplib release since 0.5. Without it (another version), nothing is changed.
 */
export function coalesceWrites(model: ChannelModel): boolean {
  const socket = (model as unknown as { connection?: { stream?: Writable } }).connection?.stream;
  if (!socket || typeof socket.cork !== 'function' || typeof socket.write !== 'function') return false;
  const write = socket.write;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  socket.write = function coalescedWrite(this: Writable, ...args: Parameters<Writable['write']>): boolean {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write.apply(socket, args);
  } as Writable['write'];
  return true;
}
