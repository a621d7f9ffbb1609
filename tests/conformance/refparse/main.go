// refparse reads "<kind>\t<value>" lines on stdin and answers each with "accepted" or
// "refused\t<error>", using the parser the consumer of that kind of value uses:
//
//	cron      a CronJob's spec.schedule, as the Kubernetes API server validates it on create
//	          (pkg/apis/batch/validation validateScheduleFormat: robfig/cron's ParseStandard,
//	          and no TZ in the schedule)
//	duration  a Go duration (time.ParseDuration)
//	quantity  a Kubernetes quantity (apimachinery's resource.ParseQuantity)
//	labelkey  a label key (apimachinery's validation.IsQualifiedName)
//	labelval  a label value (validation.IsValidLabelValue)
//
// Built by the conformance tests (tests/conformance/test_reference_parsers.py) at the
// versions Kubernetes 1.34 builds with.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

func check(kind, value string) error {
	switch kind {
	case "cron":
		if _, err := cron.ParseStandard(value); err != nil {
			return err
		}
		if strings.Contains(value, "TZ") {
			return errors.New("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
		}
		return nil
	case "duration":
		_, err := time.ParseDuration(value)
		return err
	case "quantity":
		_, err := resource.ParseQuantity(value)
		return err
	case "labelkey":
		return joined(validation.IsQualifiedName(value))
	case "labelval":
		return joined(validation.IsValidLabelValue(value))
	}
	return fmt.Errorf("unknown kind %q", kind)
}

func joined(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		kind, value, _ := strings.Cut(in.Text(), "\t")
		if err := check(kind, value); err != nil {
			fmt.Println("refused\t" + strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Println("accepted")
		}
	}
}
