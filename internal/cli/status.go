package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Runner runs the commands against one API server as the caller.
type Runner struct {
	// Client reads and patches the operator's objects; it is never asked for a Secret.
	Client client.Client
	// Out receives what a command prints.
	Out io.Writer
	// Clock gives now for relative times and paces `refresh --wait`.
	Clock clock.Clock
	// Namespace is where commands act without --all-namespaces: -n, else the context's.
	Namespace string
	// PollInterval is how often `refresh` looks at the object while it waits (default 1s).
	PollInterval time.Duration
	// Open opens a URL in a browser (`consent --open`); nil: xdg-open or open.
	Open func(url string) error
}

// StatusOptions are the flags of `status`.
type StatusOptions struct {
	AllNamespaces bool
	// Selector filters by label; nil or empty selects everything.
	Selector labels.Selector
	// Output is "" (the table) or "json".
	Output string
}

// Status prints one table of every ThingSpaceApp, M2MSession and CloudAuthorization in the namespace
// (or all namespaces, and then the cluster-scoped kinds too, with an empty namespace). A kind that cannot be listed (RBAC, CRD missing) is reported in the error while
// the others still print.
func (r *Runner) Status(ctx context.Context, o StatusOptions) error {
	ns := r.Namespace
	if o.AllNamespaces {
		ns = ""
	}
	var opts []client.ListOption
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if o.Selector != nil && !o.Selector.Empty() {
		opts = append(opts, client.MatchingLabelsSelector{Selector: o.Selector})
	}
	var rows []Row
	var errs []error
	for _, k := range kinds {
		if k.ClusterScoped && !o.AllNamespaces {
			continue
		}
		got, err := listRows(ctx, r.Client, k, opts...)
		var status apierrors.APIStatus
		if err != nil && !errors.As(err, &status) && !meta.IsNoMatchError(err) {
			// Not an answer of the API server (unreachable, TLS, ctx): the other kinds would fail alike.
			return fmt.Errorf("list %s: %w", k.GroupResource(), err)
		}
		if err != nil {
			errs = append(errs, apiError(err, "list", k, types.NamespacedName{Namespace: ns}))
			continue
		}
		rows = append(rows, got...)
	}
	sortRows(rows)
	var err error
	switch {
	case o.Output == "json":
		err = WriteJSON(r.Out, rows)
	case len(rows) == 0 && len(errs) == 0 && ns == "":
		_, err = fmt.Fprintln(r.Out, "No ThingSpace resources found.")
	case len(rows) == 0 && len(errs) == 0:
		_, err = fmt.Fprintf(r.Out, "No ThingSpace resources found in %s namespace.\n", ns)
	case len(rows) > 0:
		err = WriteTable(r.Out, rows, o.AllNamespaces, r.Clock.Now())
	}
	return errors.Join(append(errs, err)...)
}

// listRows lists one kind and reads a row of each object.
func listRows(ctx context.Context, c client.Client, k kind, opts ...client.ListOption) ([]Row, error) {
	list := k.newList()
	if err := c.List(ctx, list, opts...); err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, 0, len(items))
	for _, it := range items {
		obj, ok := it.(client.Object)
		if !ok {
			continue
		}
		if row, ok := RowOf(obj); ok {
			rows = append(rows, row)
		}
	}
	return rows, nil
}
