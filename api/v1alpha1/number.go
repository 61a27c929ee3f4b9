package v1alpha1

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
)

// Number is a metric value or a gate bound. It is written in manifests as a plain JSON number
// (test_accuracy: 0.8723) and kept exactly as the API server returns it, so what a person wrote is
// what `kubectl get` and `kubectl podium compare` show. Comparisons are exact decimal comparisons,
// never float64 round-offs.
// +kubebuilder:validation:Type=number
type Number string

// NewNumber returns the Number for a float, in its shortest exact form.
func NewNumber(f float64) Number {
	return Number(strconv.FormatFloat(f, 'g', -1, 64))
}

// Rat returns the exact rational value of n, or false when n is not a number.
func (n Number) Rat() (*big.Rat, bool) {
	return new(big.Rat).SetString(string(n))
}

// Float64 returns n as a float64, for metrics and display; zero when n is not a number.
func (n Number) Float64() float64 {
	f, _ := strconv.ParseFloat(string(n), 64)
	return f
}

// String returns the number as written.
func (n Number) String() string { return string(n) }

// MarshalJSON writes the number unquoted.
func (n Number) MarshalJSON() ([]byte, error) {
	if n == "" {
		return []byte("0"), nil
	}
	if _, ok := n.Rat(); !ok {
		return nil, fmt.Errorf("%q is not a number", string(n))
	}
	return []byte(n), nil
}

// UnmarshalJSON reads a JSON number, or a string that holds one.
func (n *Number) UnmarshalJSON(data []byte) error {
	var num json.Number
	if err := json.Unmarshal(data, &num); err != nil {
		return fmt.Errorf("metric values must be numbers, such as 0.8723: %w", err)
	}
	if _, ok := Number(num).Rat(); !ok {
		return fmt.Errorf("%q is not a number", string(num))
	}
	*n = Number(num)
	return nil
}
