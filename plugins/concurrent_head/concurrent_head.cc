// The `concurrent-head` page: `?id=N` puts <title>req-N</title> and
// <meta name="req-id" content="N"> in the head, awaits asynchronous work, then
// renders the head and a body carrying N. With head-state registered on this
// environment's head every response holds only its own N; without, the head is
// one vector shared by every request and titles leak between responses.
#include <fmt/format.h>

#include <iterator>

#include "modgraph/loader/sdk.h"
#include "modgraph/modules/head.h"
#include "modgraph/pages/page.h"

namespace modgraph::plugins {
namespace {

const modules::HeadApi* g_head = nullptr;

boost::asio::awaitable<pages::PageResult> Render(pages::PageRequest request) {
  auto id = request.query.find("id");
  const std::string req_id = pages::EscapeHtml(id == request.query.end() ? "none" : id->second);
  g_head->reset();
  // Formatted on the stack: add_child copies what it keeps.
  fmt::memory_buffer element;
  fmt::format_to(std::back_inserter(element), "<title>req-{}</title>", req_id);
  g_head->add_child({element.data(), element.size()});
  element.clear();
  fmt::format_to(std::back_inserter(element), "<meta name=\"req-id\" content=\"{}\">", req_id);
  g_head->add_child({element.data(), element.size()});
  co_await request.async_work();
  co_return pages::PageResult{.status = 200,
                              .head = g_head->render(),
                              .body = fmt::format("<h1 data-testid=\"req-id\">{}</h1>", req_id)};
}

void Init(sdk::ModuleContext& context) {
  g_head = &context.import_module<modules::HeadApi>("head");
}

const char* const kImports[] = {"head"};
const pages::PageApi kPage{"/concurrent-head", &Render};

}  // namespace
}  // namespace modgraph::plugins

MODGRAPH_MODULE(concurrent_head, {.id = "concurrent-head",
                                  .imports = modgraph::plugins::kImports,
                                  .api = &modgraph::plugins::kPage,
                                  .init = &modgraph::plugins::Init,
                                  .teardown = &::modgraph::sdk::nothing_to_stop});
