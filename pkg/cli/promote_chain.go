package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
)

// EnvOrderAnnotation declares a service's environment chain on its CVs,
// in promotion order, e.g. "dev,staging,prod": `promote --service s --env
// prod` then promotes from staging. --env-order gives it on the command
// line instead.
const EnvOrderAnnotation = "cvmanager.dev/env-order"

// previousEnv is the environment before env in order.
func previousEnv(order []string, env string) (string, error) {
	i := slices.Index(order, env)
	switch {
	case i < 0:
		return "", fmt.Errorf("environment %q is not in the chain %s", env, strings.Join(order, " → "))
	case i == 0:
		return "", fmt.Errorf("environment %q is the first of the chain %s: nothing comes before it", env, strings.Join(order, " → "))
	}
	return order[i-1], nil
}

// parseEnvOrder splits "dev, staging,prod" into its environments.
func parseEnvOrder(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// envChain is the service's chain: --env-order, else the annotation its
// CVs carry (they must agree).
func (o *promoteOptions) envChain(ctx context.Context, cvs versioned.Interface) ([]string, error) {
	if o.envOrder != "" {
		return parseEnvOrder(o.envOrder), nil
	}
	list, err := o.service.list(ctx, cvs)
	if err != nil {
		return nil, err
	}
	found := ""
	for _, cv := range list {
		v := cv.Annotations[EnvOrderAnnotation]
		if v == "" {
			continue
		}
		if found != "" && strings.Join(parseEnvOrder(v), ",") != strings.Join(parseEnvOrder(found), ",") {
			return nil, fmt.Errorf("the CVs of service %s declare different chains in %s: %q and %q", o.service.service, EnvOrderAnnotation, found, v)
		}
		found = v
	}
	if found == "" {
		return nil, fmt.Errorf("service %s declares no environment chain: annotate its CVs with %s (e.g. dev,staging,prod) or pass --env-order",
			o.service.service, EnvOrderAnnotation)
	}
	return parseEnvOrder(found), nil
}

// resolveChain turns --env into --from and --to: the target environment
// and the one before it in the chain.
func (o *promoteOptions) resolveChain(ctx context.Context, cvs versioned.Interface) error {
	switch {
	case o.env == "" && (o.from == "" || o.to == ""):
		return fmt.Errorf(`required flag(s) "from", "to" not set (or give --service and --env)`)
	case o.env == "":
		return nil
	case o.service.service == "":
		return fmt.Errorf("--env picks environments of a service: give --service")
	case o.from != "" || o.to != "":
		return fmt.Errorf("--env takes the source from the environment chain: leave out --from and --to")
	}
	order, err := o.envChain(ctx, cvs)
	if err != nil {
		return err
	}
	from, err := previousEnv(order, o.env)
	if err != nil {
		return err
	}
	o.from, o.to = from, o.env
	return nil
}
