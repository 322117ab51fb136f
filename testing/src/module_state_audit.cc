// The module-state audit; see module_state_audit.h. What it watches (the
// copies, their writable ranges, exclusions and symbols) is found in
// module_memory.cc; here: snapshots, write tracking, attribution of each
// change to a request, the findings and the audited router.
#include "modgraph/testing/module_state_audit.h"

#include <cxxabi.h>
#include <elf.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <map>
#include <set>

#include "modgraph/context/asio.h"
#include "modgraph/loader/internal/elf.h"
#include "module_memory.h"
#include "slice_executor.h"
#include "write_tracker.h"

namespace modgraph::testing {
namespace {

using audit_internal::Copy;
using audit_internal::LiveReader;
using audit_internal::PageRange;
using audit_internal::Range;
using audit_internal::Region;
using audit_internal::WriteTracker;

// Where a written byte belongs: a symbol, or an 8-byte word of a section.
struct Location {
  std::uint64_t offset = 0;  // from the copy's load base
  std::uint64_t size = 0;
  std::string name;
  std::string section;
};

struct Written {
  Location where;
  std::set<std::uint64_t> requests;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> changed;  // within the location
  bool rewritten_unchanged = false;
};

// The changed runs [first, second) of `live` against `snapshot`: 64-byte blocks
// compared whole, bytes only inside blocks that differ.
std::vector<std::pair<std::size_t, std::size_t>> ChangedRuns(const unsigned char* live,
                                                             const unsigned char* snapshot,
                                                             std::size_t size) {
  constexpr std::size_t kBlock = 64;
  std::vector<std::pair<std::size_t, std::size_t>> runs;
  for (std::size_t block = 0; block < size; block += kBlock) {
    const std::size_t end = std::min(size, block + kBlock);
    if (std::memcmp(live + block, snapshot + block, end - block) == 0) continue;
    for (std::size_t i = block; i < end; ++i) {
      if (live[i] == snapshot[i]) continue;
      if (!runs.empty() && runs.back().second == i) {
        runs.back().second = i + 1;
      } else {
        runs.emplace_back(i, i + 1);
      }
    }
  }
  return runs;
}

std::string Demangle(const std::string& name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && out != nullptr ? std::string(out.get()) : name;
}

// Adds [begin, end) to a sorted list of disjoint ranges, merging.
void AddRange(std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges, std::uint64_t begin,
              std::uint64_t end) {
  ranges.emplace_back(begin, end);
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<std::uint64_t, std::uint64_t>> merged;
  for (const auto& range : ranges) {
    if (!merged.empty() && range.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, range.second);
    } else {
      merged.push_back(range);
    }
  }
  ranges = std::move(merged);
}

}  // namespace

struct ModuleStateAudit::Impl {
  AuditOptions options;
  LiveReader reader;
  std::vector<Copy> copies;
  std::vector<Region> regions;
  std::unique_ptr<WriteTracker> tracker;
  std::map<std::pair<std::size_t, std::uint64_t>, Written> written;  // (copy, offset)
  std::vector<std::uint64_t> slices;                                 // enclosing requests
  std::vector<std::uintptr_t> addresses;                             // scratch
  Stats stats;

  bool Excluded(const Copy& copy, std::uintptr_t address, std::uintptr_t* skip_to) const {
    for (const Range& range : copy.excluded) {
      if (address >= range.begin && address < range.end) {
        *skip_to = range.end;
        return true;
      }
    }
    return false;
  }

  // The next excluded byte at or after `address`, or `limit`.
  std::uintptr_t NextExcluded(const Copy& copy, std::uintptr_t address,
                              std::uintptr_t limit) const {
    for (const Range& range : copy.excluded) {
      if (range.begin >= address && range.begin < limit) limit = range.begin;
    }
    return limit;
  }

  Location Resolve(const Copy& copy, std::uint64_t offset) const {
    if (copy.symbols) {
      const elf::Symbol* symbol = copy.symbols->SymbolAt(offset);
      if (symbol != nullptr && symbol->type != STT_TLS && symbol->type != STT_FUNC) {
        return {symbol->value, std::max<std::uint64_t>(symbol->size, 1), Demangle(symbol->name),
                symbol->section};
      }
      const std::uint64_t word = offset & ~std::uint64_t{7};
      if (const elf::Section* section = copy.symbols->SectionAt(offset); section != nullptr) {
        return {word, 8, fmt::format("{}+{:#x}", section->name, word - section->address),
                section->name};
      }
    }
    const std::uint64_t word = offset & ~std::uint64_t{7};
    return {word, 8, fmt::format("+{:#x}", word), ""};
  }

  // Attributes the bytes [begin, end) of `copy` to `request`. `changed` is false
  // for a recorded write (one address); the keys touched go to `touched`.
  void Attribute(std::size_t c, std::uintptr_t begin, std::uintptr_t end, std::uint64_t request,
                 bool changed, std::set<std::pair<std::size_t, std::uint64_t>>& touched) {
    const Copy& copy = copies[c];
    while (begin < end) {
      std::uintptr_t skip_to = 0;
      if (Excluded(copy, begin, &skip_to)) {
        begin = skip_to;
        continue;
      }
      const Location where = Resolve(copy, begin - copy.base);
      const std::uintptr_t location_end = copy.base + where.offset + where.size;
      const std::uintptr_t chunk_end = NextExcluded(copy, begin, std::min(end, location_end));
      const auto key = std::make_pair(c, where.offset);
      Written& record = written[key];
      if (record.where.name.empty()) record.where = where;
      record.requests.insert(request);
      if (changed) {
        // Whole 8-byte words: which bytes of a pointer differ depends on where
        // the heap is, and a report should not change from run to run.
        const std::uint64_t first = (begin - copy.base - where.offset) & ~std::uint64_t{7};
        const std::uint64_t last = ((chunk_end - copy.base - where.offset) + 7) & ~std::uint64_t{7};
        AddRange(record.changed, first, std::min(last, where.size));
      }
      touched.insert(key);
      begin = std::max(chunk_end, begin + 1);
    }
  }

  void Checkpoint(std::uint64_t request) {
    ++stats.checkpoints;
    std::set<std::pair<std::size_t, std::uint64_t>> changed_keys;
    for (Region& region : regions) {
      const std::size_t size = region.end - region.begin;
      const unsigned char* live = reader.Read(region.begin, size);
      if (std::memcmp(live, region.snapshot.data(), size) == 0) continue;
      if (request != 0) {
        for (const auto& [i, j] : ChangedRuns(live, region.snapshot.data(), size)) {
          Attribute(region.copy, region.begin + i, region.begin + j, request, true, changed_keys);
        }
      }
      std::memcpy(region.snapshot.data(), live, size);
    }
    if (tracker == nullptr) return;
    addresses.clear();
    stats.writes_dropped += tracker->Drain(addresses);
    stats.writes_recorded += addresses.size();
    if (request == 0) return;
    std::set<std::pair<std::size_t, std::uint64_t>> written_keys;
    for (std::uintptr_t address : addresses) {
      for (const Region& region : regions) {
        if (address >= region.begin && address < region.end) {
          Attribute(region.copy, address, address + 1, request, false, written_keys);
          break;
        }
      }
    }
    for (const auto& key : written_keys) {
      if (!changed_keys.contains(key)) written[key].rewritten_unchanged = true;
    }
  }
};

ModuleStateAudit::ModuleStateAudit(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModuleStateAudit::~ModuleStateAudit() = default;

absl::StatusOr<std::unique_ptr<ModuleStateAudit>> ModuleStateAudit::Start(const Topology& topology,
                                                                          AuditOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  absl::StatusOr<audit_internal::ModuleMemory> memory = audit_internal::FindModuleMemory(topology);
  if (!memory.ok()) return memory.status();
  impl->copies = std::move(memory->copies);
  impl->regions = std::move(memory->regions);
  Stats& stats = impl->stats;
  stats.copies = impl->copies.size();
  for (Region& region : impl->regions) {
    const std::size_t size = region.end - region.begin;
    const unsigned char* live = impl->reader.Read(region.begin, size);
    region.snapshot.assign(live, live + size);
    stats.bytes_watched += size;
    for (const Range& excluded : impl->copies[region.copy].excluded) {
      const std::uintptr_t begin = std::max(excluded.begin, region.begin);
      const std::uintptr_t end = std::min(excluded.end, region.end);
      if (begin < end) stats.bytes_excluded += end - begin;
    }
  }
  if (options.track_writes && WriteTracker::Supported() && !impl->regions.empty()) {
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    std::vector<PageRange> pages;
    for (const Region& region : impl->regions) {
      pages.push_back({region.begin & ~(page - 1), (region.end + page - 1) & ~(page - 1)});
    }
    std::sort(pages.begin(), pages.end(),
              [](const PageRange& a, const PageRange& b) { return a.begin < b.begin; });
    std::vector<PageRange> merged;
    for (const PageRange& range : pages) {
      if (!merged.empty() && range.begin <= merged.back().end) {
        merged.back().end = std::max(merged.back().end, range.end);
      } else {
        merged.push_back(range);
      }
    }
    absl::StatusOr<std::unique_ptr<WriteTracker>> tracker = WriteTracker::Start(std::move(merged));
    if (!tracker.ok()) return tracker.status();
    impl->tracker = *std::move(tracker);
    stats.tracking_writes = true;
  }
  return std::unique_ptr<ModuleStateAudit>(new ModuleStateAudit(std::move(impl)));
}

void ModuleStateAudit::Checkpoint(std::uint64_t request_id) { impl_->Checkpoint(request_id); }

void ModuleStateAudit::EnterSlice(std::uint64_t request_id) {
  impl_->Checkpoint(impl_->slices.empty() ? 0 : impl_->slices.back());
  impl_->slices.push_back(request_id);
}

void ModuleStateAudit::LeaveSlice() {
  if (impl_->slices.empty()) return;
  impl_->Checkpoint(impl_->slices.back());
  impl_->slices.pop_back();
}

std::vector<ModuleStateFinding> ModuleStateAudit::Findings() const {
  std::vector<ModuleStateFinding> findings;
  for (const auto& [key, record] : impl_->written) {
    if (record.requests.size() < 2) continue;
    const Copy& copy = impl_->copies[key.first];
    findings.push_back({.environment = copy.environment,
                        .instances = copy.instances,
                        .library = copy.library,
                        .symbol = record.where.name,
                        .section = record.where.section,
                        .offset = record.where.offset,
                        .size = record.where.size,
                        .changed = record.changed,
                        .rewritten_unchanged = record.rewritten_unchanged,
                        .requests = {record.requests.begin(), record.requests.end()}});
  }
  return findings;
}

ModuleStateAudit::Stats ModuleStateAudit::stats() const { return impl_->stats; }

std::string Describe(const ModuleStateFinding& finding) {
  std::vector<std::string> bytes;
  for (const auto& [begin, end] : finding.changed) {
    bytes.push_back(end - begin == 1 ? fmt::format("{}", begin)
                                     : fmt::format("{}-{}", begin, end - 1));
  }
  std::string how;
  if (!bytes.empty()) how = fmt::format("byte(s) {} changed", fmt::join(bytes, ", "));
  if (finding.rewritten_unchanged) {
    how += fmt::format("{}rewritten with the value it held", how.empty() ? "" : "; also ");
  }
  constexpr std::size_t kShown = 8;
  std::vector<std::uint64_t> shown(
      finding.requests.begin(), finding.requests.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                               finding.requests.size(), kShown)));
  return fmt::format(
      "environment {}, {}: {} ({}{} bytes at +{:#x}; {}) written by {} requests ({}{}): module "
      "state every request on this instance shares; keep it per request (a StateKind, or a slot "
      "whose provider is loaded in environment {}), or declare it with MODGRAPH_SHARED_STATE if "
      "sharing it is safe",
      finding.environment, fmt::join(finding.instances, ", "), finding.symbol,
      finding.section.empty() ? "" : finding.section + ", ", finding.size, finding.offset, how,
      finding.requests.size(), fmt::join(shown, ", "),
      finding.requests.size() > kShown ? ", …" : "", finding.environment);
}

server::Router MakeAuditedRouter(const pages::PageHost& host, server::WorkFactory make_work,
                                 ModuleStateAudit& audit) {
  namespace asio = boost::asio;
  server::Router router;
  for (const pages::PageHost::Page& page : host.pages()) {
    (void)router.Add(
        page.route,
        [&host, &page, make_work,
         &audit](const server::Request& request) -> asio::awaitable<server::Response> {
          absl::StatusOr<pages::AsyncWork> work = make_work(request);
          if (!work.ok()) co_return server::RefusedWork(work.status());
          auto executor = co_await asio::this_coro::executor;
          co_return co_await modgraph::co_spawn(
              audit_internal::SliceExecutor(executor, &audit, request.id),
              host.Render<server::Response>(page, server::ToPageRequest(request, *std::move(work))),
              asio::use_awaitable);
        });
  }
  return router;
}

}  // namespace modgraph::testing
