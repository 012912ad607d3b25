package revision

import (
	"fmt"
	"strconv"
)

// MaxNameLength is the longest revision name: a DNS label's 63 characters,
// as Kubernetes and Knative require of revision names.
const MaxNameLength = 63

// MaxConfigurationNameLength is the longest configuration name, so that
// "<name>-00001" fits MaxNameLength.
const MaxConfigurationNameLength = MaxNameLength - len("-00001")

// ValidateName reports whether name is a valid revision or configuration
// name: a DNS-1035 label of 1 to MaxNameLength characters, lower-case
// letters, digits and '-', starting with a letter and ending with a letter
// or digit (Knative's rule for revision names). The error wraps
// ErrInvalidName and says which character or length is wrong.
func ValidateName(name string) error {
	return validateLabel("name", name, true, MaxNameLength)
}

// GeneratedName is the name Configuration gives the revision of the given
// generation when the template names none: "<configuration>-00001", with at
// least five digits, as Knative does.
func GeneratedName(configuration string, generation int64) string {
	g := strconv.FormatInt(generation, 10)
	for len(g) < 5 {
		g = "0" + g
	}
	return configuration + "-" + g
}

// validateLabel checks a DNS label: DNS-1035 (first character a letter)
// when letterFirst, else DNS-1123 (a letter or digit).
func validateLabel(field, value string, letterFirst bool, maxLen int) error {
	kind, first := "DNS-1123 label", "a letter or digit"
	if letterFirst {
		kind, first = "DNS-1035 label", "a letter"
	}
	rule := fmt.Sprintf("must be a %s: 1-%d characters of lower-case letters, digits and '-', starting with %s and ending with a letter or digit",
		kind, maxLen, first)
	switch {
	case value == "":
		return fmt.Errorf("%w: %s is empty, %s", ErrInvalidName, field, rule)
	case len(value) > maxLen:
		return fmt.Errorf("%w: %s %q is %d characters, %s", ErrInvalidName, field, value, len(value), rule)
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		lower, digit := 'a' <= c && c <= 'z', '0' <= c && c <= '9'
		var bad bool
		switch {
		case i == 0 && letterFirst:
			bad = !lower
		case i == 0, i == len(value)-1:
			bad = !lower && !digit
		default:
			bad = !lower && !digit && c != '-'
		}
		if bad {
			return fmt.Errorf("%w: %s %q has %q at index %d, %s", ErrInvalidName, field, value, c, i, rule)
		}
	}
	return nil
}
