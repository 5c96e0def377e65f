package domain

// Slot is a candidate of the fair rotation: a statically eligible rep with
// its live load.
type Slot struct {
	ID       string
	Weight   int
	Capacity int
	Load     int
	Excluded bool
}

// Pick is the fairness rule, the same as the store's Lua script (which is
// the one that decides; this copy answers dry runs and documents the rule):
// smooth weighted round-robin. Every candidate under capacity adds its
// weight to its current weight cw; the one with the highest cw that is not
// excluded for this lead wins (ties: the first in rep id order) and pays the
// sum of the weights added. Over any run of decisions each rep's share
// converges to weight/sum(weights) among the reps that were eligible, with
// a deviation bounded by one lead; a rep that was away does not build up a
// backlog of "owed" leads. It returns the index of the chosen slot (-1 when
// none) and the new current weights (unchanged when none).
func Pick(slots []Slot, cw map[string]int) (int, map[string]int) {
	next := make(map[string]int, len(cw))
	for k, v := range cw {
		next[k] = v
	}
	total, best := 0, -1
	for i, s := range slots {
		if s.Load >= s.Capacity {
			continue
		}
		next[s.ID] += s.Weight
		total += s.Weight
		if !s.Excluded && (best < 0 || next[s.ID] > next[slots[best].ID]) {
			best = i
		}
	}
	if best < 0 {
		return -1, cw
	}
	next[slots[best].ID] -= total
	return best, next
}
