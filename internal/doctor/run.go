package doctor

import (
	"context"
	"fmt"
	"io"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/poddial"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/promapi"
)

// Run loads the kubeconfig as kubectl does, diagnoses c's Service, and writes the report
// to stdout. It returns an error wrapping ErrFindings when an error-level finding exists.
func Run(ctx context.Context, c Config, stdout io.Writer) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules() // $KUBECONFIG, then ~/.kube/config
	rules.ExplicitPath = c.Kubeconfig
	kc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.Context})
	rc, err := kc.ClientConfig()
	if err != nil {
		return fmt.Errorf("%w: kubeconfig: %w", exitcode.ErrUsage, err)
	}
	if c.Namespace == "" {
		if c.Namespace, _, err = kc.Namespace(); err != nil {
			return fmt.Errorf("%w: kubeconfig namespace: %w", exitcode.ErrUsage, err)
		}
	}
	// A diagnosis makes a few dozen requests at once (per pod); client-go's default rate
	// limit (5/s) would make it crawl.
	rc.QPS, rc.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("%w: kubernetes client: %w", exitcode.ErrUsage, err)
	}
	gw, err := gatewayclient.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("%w: gateway API client: %w", exitcode.ErrUsage, err)
	}
	pd := poddial.New(rc, cs.CoreV1().RESTClient())
	defer pd.Close()

	d := &Doctor{Kube: cs, Gateway: gw, Dial: pd.Dial, Cfg: c}
	if c.Prometheus != "" {
		if err := checkPrometheusURL(c.Prometheus); err != nil {
			return fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
		}
		if d.Prometheus, err = promapi.New(c.Prometheus); err != nil {
			return fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
		}
	}
	rep, err := d.Diagnose(ctx)
	if err != nil {
		return fmt.Errorf("diagnose %s/%s: %w", c.Namespace, c.Service, err)
	}
	if c.JSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout, c.Verbose)
	}
	if err != nil {
		return err
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%w: %d error finding(s)", ErrFindings, rep.Errors)
	}
	return nil
}
