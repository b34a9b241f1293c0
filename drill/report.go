package drill

import (
	"fmt"
	"strings"
	"time"
)

func verdict(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

func secs(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}

// Text renders the report for a terminal.
func Text(rep *Report) string {
	var b strings.Builder
	for _, sc := range rep.Scenarios {
		fmt.Fprintf(&b, "%s: %s", sc.Name, verdict(sc.OK))
		if sc.RTOSeconds > 0 || sc.RPOSeconds > 0 {
			fmt.Fprintf(&b, " (RTO %s, RPO %s)", secs(sc.RTOSeconds), secs(sc.RPOSeconds))
		}
		b.WriteString("\n")
		for _, st := range sc.Steps {
			fmt.Fprintf(&b, "  %-4s %-32s %9s  %s\n", verdict(st.OK), st.Name, secs(st.Seconds), st.Detail)
		}
		if len(sc.Targets) > 0 {
			b.WriteString("  recovery time by target:\n")
			for _, tt := range sc.Targets {
				fmt.Fprintf(&b, "    %-4s %-8s %9s  point %s lsn %d %s\n", verdict(tt.OK), tt.Target, secs(tt.Seconds), tt.Point, tt.LSN, tt.Detail)
			}
		}
	}
	fmt.Fprintf(&b, "drill: %s\n", verdict(rep.OK))
	return b.String()
}

// Markdown renders the report as a Markdown document (--report).
func Markdown(rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# strata drill, %s\n\n", rep.Time.Format(time.RFC3339))
	fmt.Fprintf(&b, "Result: **%s**", verdict(rep.OK))
	if rep.Hostname != "" {
		fmt.Fprintf(&b, " on %s", rep.Hostname)
	}
	if rep.From != "" {
		fmt.Fprintf(&b, ", recovering from %s", rep.From)
	}
	b.WriteString(".\n")
	if rep.RTOLimitSeconds > 0 || rep.RPOLimitSeconds > 0 {
		fmt.Fprintf(&b, "Limits: RTO %s, RPO %s.\n", secs(rep.RTOLimitSeconds), secs(rep.RPOLimitSeconds))
	}
	b.WriteString("\n| scenario | result | RTO | RPO |\n|---|---|---|---|\n")
	for _, sc := range rep.Scenarios {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", sc.Name, verdict(sc.OK), secs(sc.RTOSeconds), secs(sc.RPOSeconds))
	}
	for _, sc := range rep.Scenarios {
		fmt.Fprintf(&b, "\n## %s: %s\n\n| step | result | time | detail |\n|---|---|---|---|\n", sc.Name, verdict(sc.OK))
		for _, st := range sc.Steps {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", st.Name, verdict(st.OK), secs(st.Seconds), strings.ReplaceAll(st.Detail, "|", "\\|"))
		}
		if len(sc.Targets) > 0 {
			b.WriteString("\nRecovery time by target point:\n\n| target | point | lsn | time | result |\n|---|---|---|---|---|\n")
			for _, tt := range sc.Targets {
				fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", tt.Target, tt.Point, tt.LSN, secs(tt.Seconds), verdict(tt.OK))
			}
		}
	}
	return b.String()
}
