package torture

import (
	"fmt"

	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
	"github.com/cnlink/cnlink/transport/memnet"
)

// Opening a run's endpoints over the kernel or memnet, through the fault
// injector when the plan has faults.

// endpointRun is one open endpoint of a run.
type endpointRun struct {
	idx   int
	plan  *epPlan
	ep    *reliable.Endpoint
	raw   transport.Transport // the socket itself, below the injector
	fault *fault.Conn         // nil without faults
	tap   *tap                // what the engine sends
}

// openEndpoints opens the plan's endpoints; on error it closes what it
// opened. A memnet run gets its own network, so runs cannot interfere.
func openEndpoints(p *runPlan) ([]*endpointRun, error) {
	var mn *memnet.Network
	if !p.netlink {
		mn = memnet.New(memnet.Config{})
	}
	var eps []*endpointRun
	fail := func(err error) ([]*endpointRun, error) {
		for _, e := range eps {
			e.ep.Close()
		}
		return nil, err
	}
	for i := range p.eps {
		ep := &p.eps[i]
		var tr transport.Transport
		if p.netlink {
			c, err := transport.Open(transport.Config{ReadBuffer: ep.readBuf})
			if err != nil {
				return fail(fmt.Errorf("endpoint %d: %w", i, err))
			}
			tr = c
		} else {
			c, err := mn.Open(0)
			if err != nil {
				return fail(fmt.Errorf("endpoint %d: %w", i, err))
			}
			if ep.readBuf > 0 {
				if err := c.SetReadBuffer(ep.readBuf); err != nil {
					c.Close()
					return fail(fmt.Errorf("endpoint %d: %w", i, err))
				}
			}
			tr = c
		}
		er := &endpointRun{idx: i, plan: ep, raw: tr}
		if ep.faults != nil {
			er.fault = fault.Wrap(tr, *ep.faults)
			tr = er.fault
		}
		er.tap = newTap(tr)
		tr = er.tap
		cfg := ep.cfg
		e, err := reliable.NewEndpoint(tr, &cfg)
		if err != nil {
			tr.Close()
			return fail(fmt.Errorf("endpoint %d: %w", i, err))
		}
		er.ep = e
		eps = append(eps, er)
	}
	return eps, nil
}
