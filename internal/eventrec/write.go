package eventrec

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/go-logr/logr"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record/util"
)

// writeEvent is client-go's recordEvent: a series is patched (created when it is gone), a single Event
// created. It returns the Event as written and whether to try again (the API server was not reached).
func writeEvent(ctx context.Context, sink events.EventSink, log logr.Logger, e *eventsv1.Event) (*eventsv1.Event, bool) {
	var written *eventsv1.Event
	var err error
	series := e.Series != nil
	if series {
		patch, perr := seriesPatch(e)
		if perr != nil {
			log.Error(perr, "Unable to calculate diff, no merge is possible")
			return nil, false
		}
		written, err = sink.Patch(ctx, e, patch)
	}
	if !series || util.IsKeyNotFoundError(err) {
		e.ResourceVersion = ""
		written, err = sink.Create(ctx, e)
	}
	if err == nil {
		return written, false
	}
	var construction *restclient.RequestConstructionError
	var status *apierrors.StatusError
	switch {
	case errors.As(err, &construction):
		log.Error(err, "Unable to construct event (will not retry!)", "reason", e.Reason)
		return nil, false
	case errors.As(err, &status):
		if apierrors.IsAlreadyExists(err) {
			// A series' patch found no Event and its create found one: written meanwhile, try again.
			if series {
				return nil, true
			}
			log.V(5).Info("Server rejected event (will not retry!)", "reason", e.Reason, "err", err)
		} else {
			log.Error(err, "Server rejected event (will not retry!)", "reason", e.Reason)
		}
		return nil, false
	}
	// An unexpected answer or a transport error: try again.
	log.Error(err, "Unable to write event (may retry after sleeping)")
	return nil, true
}

// seriesPatch is client-go's createPatchBytesForSeries: the Event's series as a strategic merge patch.
func seriesPatch(e *eventsv1.Event) ([]byte, error) {
	old := e.DeepCopy()
	old.Series = nil
	oldData, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	newData, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return strategicpatch.CreateTwoWayMergePatch(oldData, newData, eventsv1.Event{})
}
