// The test kit: seeded concurrent in-process runs, parity and minimisation.
#include "modgraph/testing/testkit.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <mutex>
#include <numeric>
#include <random>

#include "modgraph/context/asio.h"
#include "modgraph/context/request_context.h"
#include "modgraph/pages/page_host.h"
#include "modgraph/server/http.h"
#include "slice_executor.h"

namespace modgraph::testing {
namespace asio = boost::asio;

namespace {

// True if `body` mentions `marker` as a whole token ("req-1" is not in "req-10").
bool Mentions(std::string_view body, std::string_view marker) {
  for (std::size_t at = body.find(marker); at != std::string_view::npos;
       at = body.find(marker, at + 1)) {
    const std::size_t end = at + marker.size();
    const bool boundary_before = at == 0 || !std::isalnum(static_cast<unsigned char>(body[at - 1]));
    const bool boundary_after =
        end == body.size() ||
        !(std::isalnum(static_cast<unsigned char>(body[end])) || body[end] == '-');
    if (boundary_before && boundary_after) return true;
  }
  return false;
}

// One request of a run: where it is in the schedule.
struct Slot {
  explicit Slot(asio::io_context& io) : gate(io), finished(io) {
    gate.expires_at(asio::steady_timer::time_point::max());
    finished.expires_at(asio::steady_timer::time_point::max());
  }
  asio::steady_timer gate;      // cancelled to release the parked request
  asio::steady_timer finished;  // cancelled when the request completed
  bool parked = false;
  bool done = false;
};

}  // namespace

std::string MarkerOf(std::string_view target) {
  std::string path;
  std::map<std::string, std::string> query;
  if (!server::DecodeTarget(target, path, query).ok()) return "";
  auto id = query.find("id");
  return id == query.end() ? "" : fmt::format("req-{}", id->second);
}

int RunReport::IndexOf(std::uint64_t request_id) const {
  for (std::size_t i = 0; i < responses.size(); ++i) {
    if (responses[i].request_id == request_id) return static_cast<int>(i);
  }
  return -1;
}

std::vector<std::size_t> RunReport::ContaminatedResponses() const {
  std::vector<std::size_t> contaminated;
  for (std::size_t i = 0; i < responses.size(); ++i) {
    const std::string own = MarkerOf(responses[i].target);
    for (std::size_t j = 0; j < responses.size(); ++j) {
      const std::string other = MarkerOf(responses[j].target);
      if (!other.empty() && other != own && Mentions(responses[i].body, other)) {
        contaminated.push_back(i);
        break;
      }
    }
  }
  return contaminated;
}

std::vector<std::size_t> RunReport::NonOkResponses() const {
  std::vector<std::size_t> non_ok;
  for (std::size_t i = 0; i < responses.size(); ++i) {
    if (responses[i].status != 200) non_ok.push_back(i);
  }
  return non_ok;
}

absl::StatusOr<std::vector<std::string>> ServedRoutes(Topology& topology) {
  absl::StatusOr<std::unique_ptr<pages::PageHost>> host = pages::PageHost::Create(topology);
  if (!host.ok()) return host.status();
  return (*host)->routes();
}

absl::Status CheckTargetsServed(Topology& topology, std::span<const std::string> targets) {
  absl::StatusOr<std::vector<std::string>> routes = ServedRoutes(topology);
  if (!routes.ok()) return routes.status();
  for (const std::string& target : targets) {
    std::string path;
    std::map<std::string, std::string> query;
    if (absl::Status decoded = server::DecodeTarget(target, path, query); !decoded.ok()) {
      return absl::InvalidArgumentError(
          fmt::format("bad target '{}': {}", target, std::string(decoded.message())));
    }
    if (std::find(routes->begin(), routes->end(), path) == routes->end()) {
      return absl::NotFoundError(fmt::format(
          "topology '{}' serves no page at {}: environment '{}' serves {} (the [server] pages "
          "of {})",
          topology.spec().name, path, topology.spec().server.pages_environment,
          routes->empty() ? std::string("nothing") : fmt::format("{}", fmt::join(*routes, ", ")),
          topology.spec().origin));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> Targets(std::string_view pattern, int count) {
  std::vector<std::string> targets;
  for (int i = 0; i < count; ++i) {
    targets.push_back(fmt::format(fmt::runtime(pattern), i));
  }
  return targets;
}

absl::StatusOr<std::unique_ptr<Topology>> LoadForTest(TopologySpec spec, Policy policy) {
  absl::StatusOr<LoadedTopology> loaded = Topology::Load(std::move(spec), {.policy = policy});
  if (!loaded.ok()) return loaded.status();
  if (!loaded->errors.empty()) return loaded->errors.front();
  return std::move(loaded->topology);
}

absl::StatusOr<RunReport> FireConcurrent(Topology& topology, std::span<const std::string> targets,
                                         RunOptions options) {
  absl::StatusOr<std::unique_ptr<pages::PageHost>> host = pages::PageHost::Create(topology);
  if (!host.ok()) return host.status();
  const std::size_t n = targets.size();
  RunReport report;
  report.seed = options.seed;
  report.responses.resize(n);
  std::mt19937_64 random(options.seed);
  report.start_order.resize(n);
  std::iota(report.start_order.begin(), report.start_order.end(), 0);
  report.release_order = report.start_order;
  std::shuffle(report.start_order.begin(), report.start_order.end(), random);
  std::shuffle(report.release_order.begin(), report.release_order.end(), random);

  Sentinel::Global().ClearEvents();
  // After the page host: it imports pages that were not loaded yet.
  std::unique_ptr<ModuleStateAudit> audit;
  if (options.audit_module_state) {
    absl::StatusOr<std::unique_ptr<ModuleStateAudit>> started =
        ModuleStateAudit::Start(topology, {.track_writes = options.track_writes});
    if (!started.ok()) return started.status();
    audit = *std::move(started);
  }
  asio::io_context io;
  std::vector<std::unique_ptr<Slot>> slots;
  for (std::size_t i = 0; i < n; ++i) slots.push_back(std::make_unique<Slot>(io));
  asio::steady_timer all_parked(io, asio::steady_timer::time_point::max());
  std::size_t parked_or_done = 0;
  auto arrive = [&] {
    if (++parked_or_done == n) all_parked.cancel();
  };

  for (std::size_t i : report.start_order) {
    pages::PageRequest request;
    if (absl::Status decoded = server::DecodeTarget(targets[i], request.path, request.query);
        !decoded.ok()) {
      return absl::InvalidArgumentError(
          fmt::format("bad target '{}': {}", targets[i], std::string(decoded.message())));
    }
    const RequestContext context = RequestContext::create();
    const std::uint64_t request_id = context.id();
    request.request_id = request_id;
    report.responses[i] = {.target = targets[i], .request_id = request_id};
    Slot& slot = *slots[i];
    // The page's asynchronous work: park at the gate the first time, yield after.
    request.async_work = [&slot, &arrive]() -> asio::awaitable<void> {
      if (slot.parked) {
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        co_return;
      }
      slot.parked = true;
      arrive();
      co_await slot.gate.async_wait(asio::as_tuple(asio::use_awaitable));
    };
    // Each resumption of the request's coroutine is one audited slice.
    auto spawn = [&](auto executor) {
      modgraph::co_spawn(
          executor,
          [&, i, request = std::move(request)]() mutable -> asio::awaitable<void> {
            pages::RenderedPage response = co_await (*host)->Render(std::move(request));
            report.responses[i].status = response.status;
            report.responses[i].body = std::move(response.body);
          },
          [&, i](std::exception_ptr error) {
            if (error) {
              report.responses[i].status = 500;
              try {
                std::rethrow_exception(error);
              } catch (const std::exception& e) {
                report.responses[i].body = e.what();
              } catch (...) {
                report.responses[i].body = "unknown exception";
              }
            }
            Slot& done = *slots[i];
            done.done = true;
            if (!done.parked) arrive();
            done.finished.cancel();
          });
    };
    run_request(context, [&] {
      if (audit) {
        spawn(audit_internal::SliceExecutor(io.get_executor(), audit.get(), request_id));
      } else {
        spawn(io.get_executor());
      }
    });
  }

  // The scheduler runs outside any request scope: release one request at a
  // time, in the seeded order, once every request is parked (or done).
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        if (parked_or_done < n) co_await all_parked.async_wait(asio::as_tuple(asio::use_awaitable));
        for (std::size_t i : report.release_order) {
          Slot& slot = *slots[i];
          if (slot.done) continue;
          slot.gate.cancel();
          co_await slot.finished.async_wait(asio::as_tuple(asio::use_awaitable));
        }
      },
      asio::detached);
  io.run();

  if (audit) {
    audit->Checkpoint(0);
    report.module_state = audit->Findings();
    report.audit = audit->stats();
  }
  report.fallback_hits = Sentinel::Global().fallback_hits();
  report.leaks = Sentinel::Global().leaks();
  report.lost_contexts = Sentinel::Global().lost_contexts();
  return report;
}

absl::StatusOr<ParityReport> RunParity(Topology& dev, Topology& prod,
                                       std::span<const std::string> targets, RunOptions options) {
  ParityReport parity;
  absl::StatusOr<RunReport> dev_run = FireConcurrent(dev, targets, options);
  if (!dev_run.ok()) return dev_run.status();
  absl::StatusOr<RunReport> prod_run = FireConcurrent(prod, targets, options);
  if (!prod_run.ok()) return prod_run.status();
  parity.dev = *std::move(dev_run);
  parity.prod = *std::move(prod_run);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const TestResponse& d = parity.dev.responses[i];
    const TestResponse& p = parity.prod.responses[i];
    if (d.status != p.status || d.body != p.body) {
      parity.divergences.push_back({targets[i], d.status, p.status, d.body, p.body});
    }
  }
  return parity;
}

bool Leaks(const RunReport& run) {
  return !run.leaks.empty() || !run.ContaminatedResponses().empty();
}

absl::StatusOr<std::vector<std::string>> MinimiseLeak(Topology& topology,
                                                      std::span<const std::string> targets,
                                                      RunOptions options) {
  std::vector<std::string> current(targets.begin(), targets.end());
  auto leaks = [&](const std::vector<std::string>& subset) -> absl::StatusOr<bool> {
    absl::StatusOr<RunReport> run = FireConcurrent(topology, subset, options);
    if (!run.ok()) return run.status();
    return Leaks(*run);
  };
  absl::StatusOr<bool> full = leaks(current);
  if (!full.ok()) return full.status();
  if (!*full) return std::vector<std::string>{};
  // ddmin: try chunks, then complements, refining the granularity.
  std::size_t granularity = 2;
  while (current.size() >= 2) {
    const std::size_t chunk = (current.size() + granularity - 1) / granularity;
    bool reduced = false;
    for (int complement = 0; complement < 2 && !reduced; ++complement) {
      for (std::size_t start = 0; start < current.size() && !reduced; start += chunk) {
        std::vector<std::string> candidate;
        for (std::size_t k = 0; k < current.size(); ++k) {
          const bool in_chunk = k >= start && k < start + chunk;
          if (in_chunk != (complement == 1)) candidate.push_back(current[k]);
        }
        if (candidate.empty() || candidate.size() == current.size()) continue;
        absl::StatusOr<bool> result = leaks(candidate);
        if (!result.ok()) return result.status();
        if (*result) {
          current = std::move(candidate);
          granularity = complement == 0 ? 2 : std::max<std::size_t>(granularity - 1, 2);
          reduced = true;
        }
      }
    }
    if (!reduced) {
      if (granularity >= current.size()) break;
      granularity = std::min(granularity * 2, current.size());
    }
  }
  return current;
}

}  // namespace modgraph::testing
