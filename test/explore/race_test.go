//go:build race

package explore

import (
	"flag"
	"strconv"
)

// raceSeeds is TestExplore's CI share under the race detector (make test-unit runs -race), which
// makes a schedule five to ten times slower on CI's two cores: 2,000 schedules take about 16 s
// without it and 3 to 4 minutes with it. 400 schedules keep the package near a minute and a half,
// the regressions included; make explore and an explicit -seeds run as many as they are told.
const raceSeeds = 400

func init() {
	// Before the command line is parsed: an explicit -seeds wins.
	f := flag.Lookup("seeds")
	f.DefValue = strconv.Itoa(raceSeeds)
	if err := f.Value.Set(f.DefValue); err != nil {
		panic(err)
	}
}
