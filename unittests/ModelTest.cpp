//===- ModelTest.cpp - Model-based randomized test --------------*- C++ -*-===//
//
// Drives random sequences of every allocator operation (valid and invalid)
// against a plain reference model of what each (sequence, cache, head)
// holds: its tokens' positions and bytes, slot by slot, and its capacity.
// After every step it checks
//   - the contents, positions, lengths and capacities kvrt reports against
//     the model (a failing call must change nothing);
//   - the internal invariants (checkInvariants): no page owned twice, no
//     leak, reference counts and statistics right, shared pages full;
//   - the device page tables planDeviceTables produces, applied to an
//     emulated device arena.
// Seeds are fixed; the test runs seeds in order for about two seconds. A
// second test runs several threads, each with its own sequences, on one
// pool at once.
//
//===----------------------------------------------------------------------===//
#include "AllocatorHelpers.h"

#include <chrono>
#include <thread>

using namespace kvrt::test;

namespace {

/// One token as the model sees it.
struct Token {
  int32_t position;
  std::vector<unsigned char> key, value;
  bool operator==(const Token &other) const {
    return position == other.position && key == other.key &&
           value == other.value;
  }
};

struct ModelHead {
  std::vector<Token> slots;
  int64_t capacity = 0;
};

struct ModelState {
  /// Empty until the sequence first touches the cache.
  std::vector<ModelHead> heads;
  int64_t next = 0;
};

/// The caches every model test uses: different heads, dtypes, page sizes
/// and per-head capacities, in one pool.
struct Harness {
  PoolPtr pool;
  std::vector<kvrt_cache *> caches;
  std::vector<kvrt_cache_desc> descs;
  std::vector<std::vector<int64_t>> capacities;

  explicit Harness(int64_t numPages) {
    descs = {makeDesc(2, 4, KVRT_DTYPE_F32, 4, 24),
             makeDesc(3, 4, KVRT_DTYPE_F16, 2, 16),
             makeDesc(1, 8, KVRT_DTYPE_F32, 8, 40)};
    capacities = {{24, 12}, {16, 8, 3}, {40}};
    pool = makePool(KVRT_DEVICE_HOST, 512, numPages);
    for (size_t c = 0; c < descs.size(); ++c) {
      kvrt_cache_config config{descs[c], nullptr, capacities[c].data()};
      kvrt_cache *cache = nullptr;
      EXPECT_EQ(kvrt_cache_create_with_config(pool.get(), &config, &cache),
                KVRT_OK);
      caches.push_back(cache);
    }
  }
};

/// The reference model of the sequences one driver owns, and the driver.
class Model {
public:
  /// `sharedPool`: other drivers create and destroy sequences on the same
  /// pool concurrently, so a freed id may be handed out again at once.
  Model(Harness &setup, uint32_t seed, bool emulateDevice,
        bool sharedPool = false)
      : setup(setup), rng(seed), emulate(emulateDevice), shared(sharedPool),
        devices(setup.caches.size()) {}

  /// Runs one random operation and checks its outcome.
  void step() {
    switch (pick(14)) {
    case 0:
    case 1:
      return create();
    case 2:
      return destroy();
    case 3:
      return fork();
    case 4:
    case 5:
    case 6:
      return append();
    case 7:
    case 8:
      return appendEvict();
    case 9:
      return replace();
    case 10:
      return select();
    case 11:
      return truncate();
    case 12:
      return pick(2) ? reserve() : setCapacities();
    default:
      return unknownSequence();
    }
  }

  /// Compares everything kvrt reports about the model's sequences.
  void verify() {
    for (const auto &entry : sequences)
      for (size_t c = 0; c < setup.caches.size(); ++c)
        verifyState(entry.first, c, entry.second[c]);
    if (emulate && !sequences.empty()) {
      size_t c = size_t(pick(int(setup.caches.size())));
      devices[c].launch(setup.caches[c], someSequences(1 + pick(3), true));
    }
  }

  /// Destroys every sequence the model owns.
  void destroyAll() {
    for (const auto &entry : sequences)
      EXPECT_EQ(kvrt_sequence_destroy(setup.pool.get(), entry.first), KVRT_OK);
    sequences.clear();
  }

private:
  int pick(int count) { return int(rng() % uint32_t(count)); }

  const kvrt_cache_desc &desc(size_t c) const { return setup.descs[c]; }
  size_t rowBytes(size_t c) const {
    return size_t(desc(c).head_dim) * kvrt_dtype_size(desc(c).dtype);
  }

  /// The model state, created on first touch like kvrt's.
  ModelState &state(int32_t id, size_t c) {
    ModelState &s = sequences[id][c];
    if (s.heads.empty()) {
      s.heads.resize(size_t(desc(c).num_kv_heads));
      for (size_t h = 0; h < s.heads.size(); ++h)
        s.heads[h].capacity = setup.capacities[c][h];
    }
    return s;
  }

  std::vector<unsigned char> randomRow(size_t c) {
    std::vector<unsigned char> row(rowBytes(c));
    for (unsigned char &byte : row)
      byte = static_cast<unsigned char>(rng());
    return row;
  }

  /// Up to `count` distinct sequences of the model (duplicates allowed
  /// when `allowDuplicates`, for reads).
  std::vector<int32_t> someSequences(int count, bool allowDuplicates = false) {
    std::vector<int32_t> all;
    for (const auto &entry : sequences)
      all.push_back(entry.first);
    std::shuffle(all.begin(), all.end(), rng);
    if (allowDuplicates && !all.empty())
      all.push_back(all.front());
    all.resize(std::min(all.size(), size_t(count)));
    return all;
  }

  int32_t anySequence() {
    std::vector<int32_t> one = someSequences(1);
    return one.empty() ? -1 : one.front();
  }

  void expectStatus(kvrt_status actual, std::initializer_list<kvrt_status> ok,
                    const char *what) {
    for (kvrt_status status : ok)
      if (actual == status)
        return;
    ADD_FAILURE() << what << ": " << kvrt_status_name(actual) << ": "
                  << kvrt_last_error();
  }

  void create() {
    if (sequences.size() >= 8)
      return;
    int32_t id = -1;
    ASSERT_EQ(kvrt_sequence_create(setup.pool.get(), &id), KVRT_OK);
    ASSERT_EQ(sequences.count(id), 0u);
    sequences[id].resize(setup.caches.size());
  }

  void destroy() {
    int32_t id = anySequence();
    if (id < 0)
      return;
    ASSERT_EQ(kvrt_sequence_destroy(setup.pool.get(), id), KVRT_OK);
    sequences.erase(id);
    // A double free is an error, unless another driver already got the id.
    if (!shared)
      EXPECT_EQ(kvrt_sequence_destroy(setup.pool.get(), id),
                KVRT_ERROR_UNKNOWN_SEQUENCE);
  }

  void fork() {
    int32_t parent = anySequence();
    if (parent < 0 || sequences.size() >= 8)
      return;
    int32_t child = -1;
    kvrt_status status =
        kvrt_sequence_fork(setup.pool.get(), parent, nullptr, &child);
    expectStatus(status, {KVRT_OK, KVRT_ERROR_OUT_OF_MEMORY}, "fork");
    if (status == KVRT_OK)
      sequences[child] = sequences[parent];
  }

  void append() {
    size_t c = size_t(pick(int(setup.caches.size())));
    std::vector<int32_t> ids = someSequences(1 + pick(3));
    if (ids.empty())
      return;
    const int32_t tokens = 1 + pick(6);
    const int32_t heads = desc(c).num_kv_heads;
    std::vector<std::vector<unsigned char>> keyRows, valueRows;
    std::vector<unsigned char> keys, values;
    for (size_t i = 0; i < ids.size() * tokens * heads; ++i) {
      keyRows.push_back(randomRow(c));
      valueRows.push_back(randomRow(c));
      keys.insert(keys.end(), keyRows.back().begin(), keyRows.back().end());
      values.insert(values.end(), valueRows.back().begin(),
                    valueRows.back().end());
    }
    kvrt_status expected = KVRT_OK;
    for (int32_t id : ids) {
      ModelState &s = state(id, c);
      for (const ModelHead &head : s.heads)
        if (expected == KVRT_OK &&
            int64_t(head.slots.size()) + tokens > head.capacity)
          expected = KVRT_ERROR_CAPACITY;
    }
    kvrt_status status =
        kvrt_append(setup.caches[c], int32_t(ids.size()), ids.data(), tokens,
                    keys.data(), values.data(), nullptr);
    if (expected != KVRT_OK) {
      EXPECT_EQ(status, expected) << kvrt_last_error();
      return;
    }
    expectStatus(status, {KVRT_OK, KVRT_ERROR_OUT_OF_MEMORY}, "append");
    if (status != KVRT_OK)
      return;
    for (size_t b = 0; b < ids.size(); ++b) {
      ModelState &s = state(ids[b], c);
      for (int32_t t = 0; t < tokens; ++t)
        for (int32_t h = 0; h < heads; ++h) {
          size_t row = (b * tokens + t) * heads + h;
          s.heads[h].slots.push_back(
              {int32_t(s.next + t), keyRows[row], valueRows[row]});
        }
      s.next += tokens;
    }
  }

  void appendEvict() {
    size_t c = size_t(pick(int(setup.caches.size())));
    std::vector<int32_t> ids = someSequences(1 + pick(3));
    if (ids.empty())
      return;
    const int32_t heads = desc(c).num_kv_heads;
    std::vector<int32_t> slots;
    kvrt_status expected = KVRT_OK;
    for (int32_t id : ids) {
      ModelState &s = state(id, c);
      for (const ModelHead &head : s.heads) {
        const int32_t length = int32_t(head.slots.size());
        int32_t slot;
        if (pick(12) == 0)
          slot = length + pick(2); // out of range
        else if (length > 0 && (length >= head.capacity || pick(2)))
          slot = pick(length);
        else
          slot = -1;
        if (expected == KVRT_OK) {
          if (slot < 0 && length + 1 > head.capacity)
            expected = KVRT_ERROR_CAPACITY;
          else if (slot >= length)
            expected = KVRT_ERROR_OUT_OF_RANGE;
        }
        slots.push_back(slot);
      }
    }
    std::vector<std::vector<unsigned char>> keyRows, valueRows;
    std::vector<unsigned char> keys, values;
    for (size_t i = 0; i < ids.size() * heads; ++i) {
      keyRows.push_back(randomRow(c));
      valueRows.push_back(randomRow(c));
      keys.insert(keys.end(), keyRows.back().begin(), keyRows.back().end());
      values.insert(values.end(), valueRows.back().begin(),
                    valueRows.back().end());
    }
    kvrt_status status =
        kvrt_append_evict(setup.caches[c], int32_t(ids.size()), ids.data(),
                          keys.data(), values.data(), slots.data(), nullptr);
    if (expected != KVRT_OK) {
      EXPECT_EQ(status, expected) << kvrt_last_error();
      return;
    }
    expectStatus(status, {KVRT_OK, KVRT_ERROR_OUT_OF_MEMORY}, "append_evict");
    if (status != KVRT_OK)
      return;
    for (size_t b = 0; b < ids.size(); ++b) {
      ModelState &s = state(ids[b], c);
      for (int32_t h = 0; h < heads; ++h) {
        size_t row = b * heads + h;
        Token token{int32_t(s.next), keyRows[row], valueRows[row]};
        if (slots[row] < 0)
          s.heads[h].slots.push_back(token);
        else
          s.heads[h].slots[slots[row]] = token;
      }
      ++s.next;
    }
  }

  void replace() {
    int32_t id = anySequence();
    if (id < 0)
      return;
    size_t c = size_t(pick(int(setup.caches.size())));
    ModelState &s = state(id, c);
    const int32_t head = pick(int(s.heads.size()) + 1); // sometimes invalid
    const int32_t length = head < int32_t(s.heads.size())
                               ? int32_t(s.heads[head].slots.size())
                               : 0;
    const int32_t slot = pick(length + 1);
    int32_t position = int32_t(s.next) + pick(3);
    if (pick(4) == 0 && length > 0)
      position = s.heads[head].slots[pick(length)].position;
    std::vector<unsigned char> key = randomRow(c), value = randomRow(c);
    kvrt_status expected = KVRT_OK;
    if (head >= int32_t(s.heads.size()) || slot >= length)
      expected = KVRT_ERROR_OUT_OF_RANGE;
    else
      for (int32_t other = 0; other < length; ++other)
        if (other != slot && s.heads[head].slots[other].position == position)
          expected = KVRT_ERROR_INVALID_ARGUMENT;
    kvrt_status status =
        kvrt_cache_replace_slot(setup.caches[c], id, head, slot, key.data(),
                                value.data(), position, nullptr);
    if (expected != KVRT_OK) {
      EXPECT_EQ(status, expected) << kvrt_last_error();
      return;
    }
    expectStatus(status, {KVRT_OK, KVRT_ERROR_OUT_OF_MEMORY}, "replace");
    if (status != KVRT_OK)
      return;
    s.heads[head].slots[slot] = {position, key, value};
    s.next = std::max<int64_t>(s.next, int64_t(position) + 1);
  }

  void select() {
    int32_t id = anySequence();
    if (id < 0)
      return;
    size_t c = size_t(pick(int(setup.caches.size())));
    ModelState &s = state(id, c);
    std::vector<int32_t> indptr = {0}, kept;
    bool unsorted = pick(10) == 0;
    for (const ModelHead &head : s.heads) {
      const int32_t length = int32_t(head.slots.size());
      const int mode = pick(4);
      for (int32_t slot = 0; slot < length; ++slot)
        if ((mode == 0 && slot < length / 2) || (mode == 1 && pick(2)) ||
            mode == 2)
          kept.push_back(slot);
      indptr.push_back(int32_t(kept.size()));
    }
    if (unsorted && kept.size() >= 2 && kept[0] < kept[1] && indptr[1] >= 2)
      std::swap(kept[0], kept[1]);
    else
      unsorted = false;
    kvrt_status status = kvrt_cache_select(setup.caches[c], id, indptr.data(),
                                           kept.data(), nullptr);
    if (unsorted) {
      EXPECT_EQ(status, KVRT_ERROR_INVALID_ARGUMENT) << kvrt_last_error();
      return;
    }
    expectStatus(status, {KVRT_OK, KVRT_ERROR_OUT_OF_MEMORY}, "select");
    if (status != KVRT_OK)
      return;
    for (size_t h = 0; h < s.heads.size(); ++h) {
      std::vector<Token> slots;
      for (int32_t i = indptr[h]; i < indptr[h + 1]; ++i)
        slots.push_back(s.heads[h].slots[kept[i]]);
      s.heads[h].slots = slots;
    }
  }

  void truncate() {
    int32_t id = anySequence();
    if (id < 0)
      return;
    int64_t longest = 0;
    for (const ModelState &s : sequences[id])
      longest = std::max(longest, s.next);
    const int64_t length = pick(int(longest) + 2);
    kvrt_status status =
        kvrt_sequence_truncate(setup.pool.get(), id, length, nullptr);
    expectStatus(status, {KVRT_OK, KVRT_ERROR_OUT_OF_MEMORY}, "truncate");
    if (status != KVRT_OK)
      return;
    for (ModelState &s : sequences[id]) {
      if (s.next <= length)
        continue;
      for (ModelHead &head : s.heads) {
        std::vector<Token> slots;
        for (const Token &token : head.slots)
          if (token.position < length)
            slots.push_back(token);
        head.slots = slots;
      }
      s.next = length;
    }
  }

  void reserve() {
    std::vector<int32_t> ids = someSequences(1 + pick(3));
    if (ids.empty())
      return;
    std::vector<kvrt_cache *> caches;
    for (size_t c = 0; c < setup.caches.size(); ++c)
      if (pick(2)) {
        caches.push_back(setup.caches[c]);
        for (int32_t id : ids)
          state(id, c);
      }
    if (caches.empty())
      return;
    kvrt_status status =
        kvrt_reserve(int32_t(caches.size()), caches.data(), int32_t(ids.size()),
                     ids.data(), 1 + pick(8));
    expectStatus(status, {KVRT_OK, KVRT_ERROR_OUT_OF_MEMORY}, "reserve");
  }

  void setCapacities() {
    int32_t id = anySequence();
    if (id < 0)
      return;
    size_t c = size_t(pick(int(setup.caches.size())));
    ModelState &s = state(id, c);
    std::vector<int64_t> capacities;
    kvrt_status expected = KVRT_OK;
    for (const ModelHead &head : s.heads) {
      int64_t capacity = 1 + pick(int(desc(c).capacity));
      if (expected == KVRT_OK && capacity < int64_t(head.slots.size()))
        expected = KVRT_ERROR_CAPACITY;
      capacities.push_back(capacity);
    }
    EXPECT_EQ(kvrt_cache_set_capacities(setup.caches[c], id, capacities.data()),
              expected)
        << kvrt_last_error();
    if (expected == KVRT_OK)
      for (size_t h = 0; h < s.heads.size(); ++h)
        s.heads[h].capacity = capacities[h];
  }

  void unknownSequence() {
    // An id the model does not own is unknown, unless another driver's.
    int32_t id = 1000 + pick(100);
    Tensor data(KVRT_DTYPE_F32, 64);
    EXPECT_EQ(kvrt_append(setup.caches[0], 1, &id, 1, data.data(), data.data(),
                          nullptr),
              KVRT_ERROR_UNKNOWN_SEQUENCE);
    EXPECT_EQ(kvrt_sequence_destroy(setup.pool.get(), id),
              KVRT_ERROR_UNKNOWN_SEQUENCE);
  }

  void verifyState(int32_t id, size_t c, const ModelState &s) {
    const kvrt_cache *cache = setup.caches[c];
    const int32_t heads = desc(c).num_kv_heads;
    int64_t next = -1;
    ASSERT_EQ(kvrt_cache_sequence_length(cache, id, &next), KVRT_OK);
    ASSERT_EQ(next, s.next) << "sequence " << id << " cache " << c;
    std::vector<int64_t> lengths(static_cast<size_t>(heads));
    std::vector<int64_t> capacities(static_cast<size_t>(heads));
    ASSERT_EQ(
        kvrt_cache_get_heads(cache, id, lengths.data(), capacities.data()),
        KVRT_OK);
    HeadRows keys = readHeads(cache, id, false);
    HeadRows values = readHeads(cache, id, true);
    for (int32_t h = 0; h < heads; ++h) {
      const int64_t capacity =
          s.heads.empty() ? setup.capacities[c][h] : s.heads[h].capacity;
      ASSERT_EQ(capacities[h], capacity) << "head " << h;
      const std::vector<Token> none;
      const std::vector<Token> &slots =
          s.heads.empty() ? none : s.heads[h].slots;
      ASSERT_EQ(lengths[h], int64_t(slots.size()))
          << "sequence " << id << " cache " << c << " head " << h;
      std::vector<int32_t> positions = headPositions(cache, id, h);
      for (size_t slot = 0; slot < slots.size(); ++slot) {
        ASSERT_EQ(positions[slot], slots[slot].position) << "slot " << slot;
        ASSERT_TRUE(keys[h][slot] == slots[slot].key)
            << "key of sequence " << id << " cache " << c << " head " << h
            << " slot " << slot;
        ASSERT_TRUE(values[h][slot] == slots[slot].value) << "value";
      }
    }
  }

  Harness &setup;
  std::mt19937 rng;
  bool emulate;
  bool shared;
  std::vector<EmulatedDevice> devices;
  /// Per sequence, the state in each cache.
  std::map<int32_t, std::vector<ModelState>> sequences;
};

TEST(ModelTest, RandomOperationsAgainstReferenceModel) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  int seeds = 0;
  for (uint32_t seed = 1; seeds == 0 || Clock::now() < deadline; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Harness setup(48);
    ASSERT_TRUE(setup.pool);
    Model model(setup, seed, true);
    for (int step = 0; step < 300; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      model.step();
      ASSERT_FALSE(HasFailure());
      model.verify();
      ASSERT_FALSE(HasFailure());
      ASSERT_TRUE(checkInvariants(setup.pool.get()));
    }
    model.destroyAll();
    ASSERT_TRUE(checkInvariants(setup.pool.get()));
    EXPECT_EQ(freePages(setup.pool.get()), 48);
    ++seeds;
  }
  RecordProperty("seeds", seeds);
}

TEST(ModelTest, ConcurrentSequencesOnOnePool) {
  // Four drivers, each with its own sequences, share a pool and its caches;
  // a fifth thread reads statistics throughout. Each driver checks its own
  // sequences after every step; the whole pool is checked at the end.
  Harness setup(96);
  ASSERT_TRUE(setup.pool);
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done) {
      kvrt_pool_usage usage;
      EXPECT_EQ(kvrt_pool_get_usage(setup.pool.get(), &usage), KVRT_OK);
      EXPECT_GE(usage.waste_bytes, 0);
    }
  });
  std::vector<std::thread> drivers;
  for (uint32_t t = 0; t < 4; ++t)
    drivers.emplace_back([&setup, t] {
      Model model(setup, 100 + t, /*emulateDevice=*/false,
                  /*sharedPool=*/true);
      for (int step = 0; step < 400 && !::testing::Test::HasFailure(); ++step) {
        model.step();
        model.verify();
      }
      model.destroyAll();
    });
  for (std::thread &driver : drivers)
    driver.join();
  done = true;
  reader.join();
  EXPECT_TRUE(checkInvariants(setup.pool.get()));
  EXPECT_EQ(freePages(setup.pool.get()), 96);
}

} // namespace
