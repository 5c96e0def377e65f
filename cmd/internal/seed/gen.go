package seed

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"time"
)

// gen makes fresh ids for clones. Not for secrets: the ids only have to be
// unique (UUIDv7 with 74 random bits; 256 random bits for identity hashes).
type gen struct {
	r   *rand.Rand
	now func() time.Time
}

func newGen(seed uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano()))), now: time.Now}
}

// uuidV7 is an RFC 9562 version 7 UUID: 48-bit Unix milliseconds, version,
// random, variant; its text sorts by time like the services' own ids.
func (g *gen) uuidV7() string {
	var b [16]byte
	ms := uint64(g.now().UnixMilli())
	binary.BigEndian.PutUint64(b[8:], g.r.Uint64())
	binary.BigEndian.PutUint64(b[0:], ms<<16|g.r.Uint64()&0xffff)
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

func (g *gen) hex64() string {
	var b [32]byte
	for i := 0; i < 32; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], g.r.Uint64())
	}
	return hex.EncodeToString(b[:])
}
