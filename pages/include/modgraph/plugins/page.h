// modgraph/plugins/page.h — the earlier name of the page contract, kept so
// that page modules written against it still build: modgraph::plugins names
// modgraph::pages. New code includes modgraph/pages/page.h.
//
//   #include "modgraph/plugins/page.h"
//   const modgraph::plugins::PageApi kPage{"/lost-ctx", &Render};  // a pages::PageApi
#pragma once

#include "modgraph/pages/page.h"

namespace modgraph {
namespace plugins = pages;
}  // namespace modgraph
