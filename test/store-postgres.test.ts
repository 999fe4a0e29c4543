import { after, before } from 'node:test';
import { openStore } from '../src/store/open.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { storeContract } from './helpers/store-contract.js';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db.drop();
});

// Every call opens another store on the same database: the second-connection tests run too.
storeContract('PostgreSQL', () => openStore(db.url), { sharedDatabase: true });
