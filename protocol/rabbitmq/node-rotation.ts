import type { BrokerAddress } from './hosts';

/**
 * Which node to connect to next. Each client starts at a random node, so that a fleet spreads over the
 * cluster, and moves to the next one after a failed attempt or a lost connection. `backoffRound` counts
 * the full rounds in which no node took the connection: the reconnect delay grows with it only, so that
 * a dead node costs no wait when another is up.
 */
export class NodeRotation {
  private index: number;
  private failedInRound = 0;
  private rounds = 0;

  constructor(private readonly nodes: readonly BrokerAddress[], random: () => number = Math.random) {
    if (nodes.length === 0) throw new Error('no broker nodes');
    this.index = Math.floor(random() * nodes.length) % nodes.length;
  }

  get current(): BrokerAddress {
    return this.nodes[this.index];
  }

  get size(): number {
    return this.nodes.length;
  }

  /** Full rounds failed since the last connection. */
  get backoffRound(): number {
    return this.rounds;
  }

  /** The current node refused or did not answer; moves on. Returns whether a full round has now failed. */
  failed(): boolean {
    this.advance();
    this.failedInRound++;
    if (this.failedInRound < this.nodes.length) return false;
    this.failedInRound = 0;
    this.rounds++;
    return true;
  }

  /** Connected: the next failure starts a fresh round. */
  connected(): void {
    this.failedInRound = 0;
    this.rounds = 0;
  }

  /** The connection to the current node was lost: the next attempt goes to another node. */
  lost(): void {
    this.advance();
  }

  private advance(): void {
    this.index = (this.index + 1) % this.nodes.length;
  }
}
