package graph

import (
	"bytes"
	"strconv"
)

// Numbers are written as graphref writes them: integers as str(int(...)),
// other numbers as str(decimal.Decimal(...)), never through float64.

// maxIntDigits is CPython's default int_max_str_digits: graphref parses
// integers with int() and fails on longer literals.
const maxIntDigits = 4300

// Decimal limits of libmpdec (64-bit), which CPython's decimal uses: a literal
// whose exponent falls outside them raises InvalidOperation in graphref.
const (
	decMaxEmax  = 999999999999999999   // largest adjusted exponent
	decMinEtiny = -1999999999999999997 // smallest exponent of the coefficient
)

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// number canonicalises the number at c.pos. The grammar is JSON's (and
// CPython's scanner's): a '.' or 'e' not followed by digits ends the number
// and then fails as extra text.
func (c *canonicalizer) number() bool {
	in, start := c.in, c.pos
	i := start
	neg := in[i] == '-'
	if neg {
		i++
	}
	intStart := i
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case i < len(in) && in[i] >= '1' && in[i] <= '9':
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	default:
		if neg && bytes.HasPrefix(in[i:], []byte("Infinity")) {
			return c.fail("-Infinity is not a JSON number")
		}
		return c.fail("expecting value")
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i+1 < len(in) && in[i] == '.' && isDigit(in[i+1]) {
		i++
		fracStart = i
		for i < len(in) && isDigit(in[i]) {
			i++
		}
		fracEnd = i
	}
	expStart, expEnd, expNeg := 0, 0, false
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		j := i + 1
		if j < len(in) && (in[j] == '+' || in[j] == '-') {
			expNeg = in[j] == '-'
			j++
		}
		if j < len(in) && isDigit(in[j]) {
			expStart = j
			for j < len(in) && isDigit(in[j]) {
				j++
			}
			expEnd, i = j, j
		}
	}
	c.pos = i
	if fracEnd == fracStart && expEnd == 0 {
		// An integer: Python's str(int(...)).
		if intEnd-intStart > maxIntDigits {
			c.pos = start
			return c.fail("integer of more than " + strconv.Itoa(maxIntDigits) + " digits")
		}
		if neg && intEnd-intStart == 1 && in[intStart] == '0' {
			c.out = append(c.out, '0')
			return true
		}
		c.out = append(c.out, in[start:i]...)
		return true
	}
	if expEnd == 0 && in[intStart] != '0' {
		// Fast path: plain notation with a non-zero integer part is what
		// str(Decimal) gives back unchanged.
		c.out = append(c.out, in[start:i]...)
		return true
	}
	var ok bool
	c.out, ok = c.appendDecimal(c.out, neg, in[intStart:intEnd], in[fracStart:fracEnd], expNeg, in[expStart:expEnd])
	if !ok {
		c.pos = start
		return c.fail("number out of range")
	}
	return true
}

// appendDecimal appends str(decimal.Decimal(literal)) for the literal with
// the given parts, following CPython's Decimal.__str__ (scientific notation
// when the exponent is positive or the number is below 1e-6, with a capital E
// and a signed exponent).
func (c *canonicalizer) appendDecimal(out []byte, neg bool, intPart, frac []byte, expNeg bool, expDigits []byte) ([]byte, bool) {
	// The literal's exponent, saturated far beyond libmpdec's limits.
	for len(expDigits) > 1 && expDigits[0] == '0' {
		expDigits = expDigits[1:]
	}
	// Beyond 3e18 the result is out of range whatever the other parts are
	// (a line cannot hold 1e18 fraction digits), and int64 cannot overflow.
	var e int64
	for _, d := range expDigits {
		if e > 3e17 {
			return out, false
		}
		e = e*10 + int64(d-'0')
	}
	if expNeg {
		e = -e
	}
	coef := append(append(c.num[:0], intPart...), frac...)
	c.num = coef
	for len(coef) > 1 && coef[0] == '0' {
		coef = coef[1:]
	}
	exp := e - int64(len(frac))
	if exp < decMinEtiny || exp+int64(len(coef))-1 > decMaxEmax {
		return out, false
	}
	if neg {
		out = append(out, '-')
	}
	leftDigits := exp + int64(len(coef))
	dotPlace := int64(1)
	if exp <= 0 && leftDigits > -6 {
		dotPlace = leftDigits
	}
	switch {
	case dotPlace <= 0:
		out = append(out, '0', '.')
		for k := int64(0); k < -dotPlace; k++ {
			out = append(out, '0')
		}
		out = append(out, coef...)
	case dotPlace >= int64(len(coef)):
		out = append(out, coef...)
		for k := int64(len(coef)); k < dotPlace; k++ {
			out = append(out, '0')
		}
	default:
		out = append(out, coef[:dotPlace]...)
		out = append(out, '.')
		out = append(out, coef[dotPlace:]...)
	}
	if leftDigits != dotPlace {
		out = append(out, 'E')
		if leftDigits-dotPlace >= 0 {
			out = append(out, '+')
		}
		out = strconv.AppendInt(out, leftDigits-dotPlace, 10)
	}
	return out, true
}
