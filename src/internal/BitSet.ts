/**
 * A growable set of small non-negative integers, one bit each: a batch of a
 * million events remembers which handlers wrote in 125 kB.
 *
 * @since 0.2.0
 */

/**
 * @since 0.2.0
 * @category models
 */
export class BitSet {
  private bits = new Uint8Array(256)

  add(n: number): void {
    const byte = n >>> 3
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.bits.length * 2))
      grown.set(this.bits)
      this.bits = grown
    }
    this.bits[byte]! |= 1 << (n & 7)
  }

  has(n: number): boolean {
    const byte = n >>> 3
    return byte < this.bits.length && (this.bits[byte]! & (1 << (n & 7))) !== 0
  }
}
