package access_test

import (
	"errors"
	"fmt"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/label"
)

func ExampleDecider_CanRead() {
	reg, err := label.NewRegistry()
	if err != nil {
		fmt.Println(err)
		return
	}
	d := access.NewDecider(reg)
	analyst := access.Principal{
		Name:       "kadri",
		Nation:     "EST",
		Clearances: map[string]string{"NATO": "SECRET"},
		Categories: map[string][]string{"Compartment": {"ALPHA"}},
	}
	l, _ := label.ParseText("NATO SECRET//REL TO EST, LUX//RESTRICTIVE Compartment: ALPHA, BRAVO")

	err = d.CanRead(analyst, "LUX", l)
	fmt.Println(errors.Is(err, access.ErrDenied))
	fmt.Println(err)

	analyst.Categories["Compartment"] = append(analyst.Categories["Compartment"], "BRAVO")
	fmt.Println(d.CanRead(analyst, "LUX", l))
	// Output:
	// true
	// access denied: principal "kadri": missing restrictive category: category "Compartment": value(s) BRAVO not held
	// <nil>
}
