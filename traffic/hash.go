package traffic

import "math/bits"

// Hash maps a sticky key (a session cookie, a user id) to a uniform 64-bit
// value for Split.Index. It is deterministic across processes and versions,
// unlike hash/maphash, so every router replica and every restart sends a
// key to the same revision. It is not meant to resist keys chosen by an
// attacker: a client that controls its key can pick its revision anyway.
//
// It reads the key eight bytes at a time through a 64×64→128-bit multiply
// and ends with the splitmix64 finalizer, so consecutive keys ("user-1",
// "user-2", …) spread evenly. It does not allocate.
func Hash(key string) uint64 {
	h := uint64(len(key))*hashK0 ^ hashK1
	for len(key) >= 8 {
		v := uint64(key[0]) | uint64(key[1])<<8 | uint64(key[2])<<16 | uint64(key[3])<<24 |
			uint64(key[4])<<32 | uint64(key[5])<<40 | uint64(key[6])<<48 | uint64(key[7])<<56
		h = fold(v^hashK1, h^hashK2)
		key = key[8:]
	}
	if len(key) > 0 {
		var v uint64
		for i := 0; i < len(key); i++ {
			v |= uint64(key[i]) << (8 * i)
		}
		h = fold(v^hashK2, h^hashK0)
	}
	// splitmix64's finalizer: every input bit reaches every output bit.
	h ^= h >> 30
	h *= hashK1
	h ^= h >> 27
	h *= hashK2
	h ^= h >> 31
	return h
}

// Odd constants with well-mixed bits (the golden ratio and splitmix64's
// multipliers).
const (
	hashK0 = 0x9e3779b97f4a7c15
	hashK1 = 0xbf58476d1ce4e5b9
	hashK2 = 0x94d049bb133111eb
)

// fold multiplies a by b to 128 bits and folds the halves together.
func fold(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}
